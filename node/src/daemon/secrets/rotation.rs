//! A roster's rotation drives the engine's (docs/PROTOCOL.md §5.1): when the adopted roster
//! names an epoch newer than the engine's, the node looks for the adopted roster whose
//! `rotation` starts from the engine's epoch and secret (the held one, or, when several
//! rotation rosters were adopted before the first rotation could begin, the newest earlier
//! version whose rotation does), and when it holds that roster's new secret (of the
//! fingerprint the roster names) it begins the engine's rotation with that roster's
//! changeover and grace, audited first (`begin_rotation`). Rotations are carried out one after
//! the other: the engine takes a new rotation only once the one under way is over (its grace
//! period ended, the old epoch purged, republication finished). Otherwise it raises an alarm,
//! by fixed name, and keeps working on the epoch it runs:
//!
//! - `secret_missing`: the new epoch's secret is not held yet (post it, or drop the sealed
//!   copy into `<data_dir>/secrets/`); the rotation begins when it comes;
//! - `previous_rotation_under_way`: the engine carries out a rotation to an earlier epoch than
//!   the adopted roster's; the next rotation begins when that one is over (after its grace
//!   period);
//! - `rotation_missing`: the epoch changed without a `rotation` block;
//! - `rotation_not_from_current_epoch`: no adopted roster has a rotation from the engine's
//!   epoch (a node that missed a whole rotation, say a data directory restored from before
//!   it; it needs its data directory rebuilt);
//! - `previous_secret_mismatch`: the rotation's previous fingerprint is not the secret the
//!   engine runs under;
//! - `rotation_refused`: the engine refused the rotation (a grace period longer than the
//!   retention).
//!
//! The check runs after every adoption (taking the sealed copies dropped into the directory
//! first), after every secret taken, at start and on every timer tick, one at a time; a
//! rotation the engine has under way to the roster's epoch is not begun again, so adopting the
//! same rotation twice, or restarting, begins it once. The audit line of a begin comes before
//! the begin: a crash between the two (or a begin the engine refuses, audited once per run)
//! leaves an audit line for a rotation that did not begin, the accepted side of the trade.
//! Once a rotation from epoch N is over (its grace period ended), the held `epoch-N.secret`
//! and any older are deleted.

use std::sync::PoisonError;

use crossmatch_protocol::{SealedSecret, secret_fingerprint};

use super::{SecretError, decode_sealed, open_checked};
use crate::daemon::{Adopter, Error, Node};
use crate::engine::Rotation;
use crate::engine::rotation::Stage;

/// What [`Node::take_secret`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretTaken {
    /// The epoch the secret is for.
    pub epoch: u32,
    /// Whether the node held it already.
    pub held_already: bool,
}

impl Node {
    /// Takes a sealed copy of an epoch's secret (the file `crossmatch secret seal` wrote, or its
    /// wire form): opened with the node key, kept only if sealed to this member and of the
    /// fingerprint the adopted roster names for its epoch, audited (`open_secret`), persisted
    /// durably, and then the roster's rotation is begun if it waited for it.
    pub async fn take_secret(&self, input: &[u8], by: Adopter) -> Result<SecretTaken, SecretError> {
        let taken = self.take_sealed(decode_sealed(input)?, by).await?;
        self.rotation_check().await;
        Ok(taken)
    }

    /// The intake of one sealed copy, one at a time (module docs of `secrets.rs`): the audit
    /// line first, then the secret persisted, so a crash between the two leaves an audit line
    /// for a secret that was not kept (posted or dropped again, it is taken then).
    async fn take_sealed(
        &self,
        sealed: SealedSecret,
        by: Adopter,
    ) -> Result<SecretTaken, SecretError> {
        let _one_at_a_time = self.secrets.intake.lock().await;
        let roster = self.rosters.current().ok_or(SecretError::NoRoster)?;
        let body = roster.body();
        let own = self.secrets.key().public_key();
        let member = body
            .members
            .iter()
            .find(|member| member.node_key == own)
            .ok_or(SecretError::NotForThisNode)?;
        // The fingerprint the adopted rosters name for the sealed epoch: the roster in force,
        // or an earlier adopted version (a rotation that waits behind another).
        let sealed_epoch = sealed.epoch;
        let named = super::named_fingerprint(&self.rosters, sealed_epoch);
        let secret =
            open_checked(&sealed, self.secrets.key(), &body.federation_id, &member.id, |epoch| {
                named.filter(|_| epoch == sealed_epoch)
            })?;
        let epoch = sealed.epoch;
        let held_already = self
            .secrets
            .get(epoch)
            .is_some_and(|held| secret_fingerprint(&held) == secret_fingerprint(&secret));
        if !held_already {
            let subject = format!("epoch:{epoch}");
            self.blocking(move |engine| {
                by.audit(engine, crate::audit::Action::OpenSecret, &subject)
            })
            .await
            .map_err(node_error)?
            .map_err(|error| node_error(error.into()))?;
            let secrets = self.secrets.clone();
            tokio::task::spawn_blocking(move || secrets.put(epoch, secret))
                .await
                .map_err(|_| node_error(Error::EngineTask))?
                .map_err(SecretError::Io)?;
            tracing::info!(epoch, "the secret of an epoch was taken");
        }
        Ok(SecretTaken { epoch, held_already })
    }

    /// Takes the sealed copies dropped into `<data_dir>/secrets/`: a taken file is removed, a
    /// refused one renamed `*.refused` (logged once, with the reason), and one of an epoch no
    /// adopted roster names yet is left for a later tick. The rotation check comes after.
    async fn take_dropped_secrets(&self) {
        let secrets = self.secrets.clone();
        let Ok(dropped) = tokio::task::spawn_blocking(move || secrets.dropped()).await else {
            return;
        };
        for (path, bytes) in dropped {
            let outcome = match decode_sealed(&bytes) {
                Ok(sealed) => self.take_sealed(sealed, Adopter::Node).await,
                Err(error) => Err(error),
            };
            let result = match &outcome {
                Ok(_) => std::fs::remove_file(&path),
                Err(SecretError::UnknownEpoch { .. } | SecretError::NoRoster) => {
                    // The roster that names it has not come yet: kept for the next tick.
                    tracing::debug!("a dropped sealed secret waits for the roster that names it");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "a dropped sealed secret was refused; renamed *.refused");
                    std::fs::rename(&path, path.with_extension("refused"))
                }
            };
            if let Err(error) = result {
                tracing::warn!(%error, "a dropped sealed secret file could not be moved");
            }
        }
    }

    /// Takes the sealed copies dropped into `<data_dir>/secrets/`, then begins the adopted
    /// rosters' rotation when it is due and the node holds its secret, or raises the alarm
    /// that says why not (module docs).
    pub(in crate::daemon) async fn check_rotation(&self) {
        self.take_dropped_secrets().await;
        self.rotation_check().await;
    }

    /// The rotation check alone, one at a time (module docs).
    async fn rotation_check(&self) {
        let _one_at_a_time = self.secrets.checking.lock().await;
        let alarm = self.rotation_step().await;
        let mut held = self.secrets.alarm.write().unwrap_or_else(PoisonError::into_inner);
        if *held != alarm {
            match alarm {
                Some(alarm) => tracing::warn!(
                    alarm,
                    "the adopted roster's rotation is not carried out; the node keeps working on its epoch"
                ),
                None if held.is_some() => tracing::info!("the rotation alarm is cleared"),
                None => {}
            }
            *held = alarm;
        }
    }

    /// One rotation check: `None` when nothing is to be done or the rotation began, else the
    /// alarm's name. Retires the held secrets of epochs whose rotation is over.
    async fn rotation_step(&self) -> Option<&'static str> {
        let roster = self.rosters.current()?;
        let target = roster.body().epoch;
        let Ok((epoch, view, running)) = self
            .blocking(|engine| {
                (engine.epoch(), engine.rotation_view(), engine.secret_fingerprint())
            })
            .await
        else {
            return None;
        };
        self.retire_old_secrets(epoch, view.as_ref()).await;
        let under_way = view.as_ref().map(|view| view.new_epoch);
        if target <= epoch || under_way == Some(target) {
            return None;
        }
        if under_way.is_some() {
            return Some("previous_rotation_under_way");
        }
        // The chain's epochs held in memory: the wait verifies nothing again per tick.
        let found = self.rosters.epochs().rotation_from(epoch);
        let Some((new_epoch, new_fingerprint, rotation)) = found else {
            return Some(match roster.body().rotation {
                None => "rotation_missing",
                Some(_) => "rotation_not_from_current_epoch",
            });
        };
        if running != rotation.previous_secret_fingerprint {
            return Some("previous_secret_mismatch");
        }
        let Some(new_secret) = self
            .secrets
            .get(new_epoch)
            .filter(|secret| secret_fingerprint(secret) == new_fingerprint)
        else {
            return Some("secret_missing");
        };
        let audited = {
            let mut audited =
                self.secrets.audited_begin.lock().unwrap_or_else(PoisonError::into_inner);
            audited.replace(new_epoch) == Some(new_epoch)
        };
        if !audited {
            let subject = format!("epoch:{new_epoch}");
            let written = self
                .blocking(move |engine| {
                    engine.audit_by_node_before_write(crate::audit::Action::BeginRotation, &subject)
                })
                .await;
            if !matches!(written, Ok(Ok(()))) {
                // Not begun without its audit line: tried again at the next check.
                *self.secrets.audited_begin.lock().unwrap_or_else(PoisonError::into_inner) = None;
                tracing::error!(
                    new_epoch,
                    "the rotation's audit line could not be written; not begun"
                );
                return Some("rotation_refused");
            }
        }
        let begun = self
            .begin_rotation(Rotation {
                new_epoch,
                new_secret,
                changeover_at_ms: rotation.changeover_at_ms,
                grace_ms: rotation.grace_ms,
            })
            .await;
        match begun {
            Ok(_) => {
                tracing::info!(
                    new_epoch,
                    changeover_at_ms = rotation.changeover_at_ms,
                    "the adopted roster's rotation began"
                );
                None
            }
            Err(error) => {
                // Retried on every tick: the alarm's change is what is logged as a warning.
                tracing::debug!(new_epoch, %error, "the engine refused the roster's rotation");
                Some("rotation_refused")
            }
        }
    }

    /// Deletes the held secrets of the epochs before `epoch` whose rotation is over: all of
    /// them, but the rotation's old epoch while its grace period lasts.
    async fn retire_old_secrets(&self, epoch: u32, view: Option<&crate::engine::RotationView>) {
        let in_grace = view
            .filter(|view| !matches!(view.stage, Stage::Purging { .. } | Stage::Done))
            .map(|view| view.old_epoch);
        let retired: Vec<u32> = self
            .secrets
            .held_epochs()
            .into_iter()
            .filter(|held| *held < epoch && Some(*held) != in_grace)
            .collect();
        for old in retired {
            let secrets = self.secrets.clone();
            match tokio::task::spawn_blocking(move || secrets.remove(old)).await {
                Ok(Ok(())) => {
                    tracing::info!(epoch = old, "the held secret of a past epoch was deleted")
                }
                Ok(Err(error)) => {
                    tracing::warn!(epoch = old, %error, "the held secret of a past epoch could not be deleted")
                }
                Err(_) => {}
            }
        }
    }

    /// The rotation alarm, by fixed name, if the adopted roster's rotation waits.
    pub fn rotation_alarm(&self) -> Option<&'static str> {
        *self.secrets.alarm.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A node failure met while taking a secret.
fn node_error(error: Error) -> SecretError {
    SecretError::Node(Box::new(error))
}
