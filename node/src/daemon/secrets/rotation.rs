//! A roster's rotation drives the engine's (docs/PROTOCOL.md §5.1): when the adopted roster
//! names an epoch newer than the engine's, with a `rotation` from the engine's epoch and
//! secret, and the node holds the new epoch's secret (of the fingerprint the roster names),
//! the node begins the engine's rotation with the roster's changeover and grace, audited
//! (`begin_rotation`). Otherwise it raises an alarm, by fixed name, and keeps working on the
//! old epoch:
//!
//! - `secret_missing`: the new epoch's secret is not held yet (post it, or drop the sealed
//!   copy into `<data_dir>/secrets/`); the rotation begins when it comes;
//! - `rotation_missing`: the epoch changed without a `rotation` block;
//! - `rotation_not_from_current_epoch`: the rotation's previous epoch is not the engine's
//!   (a node that missed a whole rotation; it needs its data directory rebuilt or the
//!   rotations between);
//! - `previous_secret_mismatch`: the rotation's previous fingerprint is not the secret the
//!   engine runs under.
//!
//! The check runs after every adoption, after every secret taken, at start and on every timer
//! tick, one at a time; a rotation the engine has under way to the roster's epoch is not begun
//! again, so adopting the same rotation twice, or restarting, begins it once.

use std::sync::PoisonError;

use crossmatch_protocol::{SealedSecret, secret_fingerprint};

use super::{SecretError, decode_sealed, open_checked};
use crate::daemon::{Adopter, Error, Node};
use crate::engine::Rotation;

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
    /// fingerprint the adopted roster names for its epoch, persisted durably, audited
    /// (`open_secret`), and then the roster's rotation is begun if it waited for it.
    pub async fn take_secret(&self, input: &[u8], by: Adopter) -> Result<SecretTaken, SecretError> {
        let sealed = decode_sealed(input)?;
        self.take_sealed(sealed, by).await
    }

    async fn take_sealed(
        &self,
        sealed: SealedSecret,
        by: Adopter,
    ) -> Result<SecretTaken, SecretError> {
        let roster = self.rosters.current().ok_or(SecretError::NoRoster)?;
        let body = roster.body();
        let own = self.secrets.key().public_key();
        let member = body
            .members
            .iter()
            .find(|member| member.node_key == own)
            .ok_or(SecretError::NotForThisNode)?;
        let secret =
            open_checked(&sealed, self.secrets.key(), &body.federation_id, &member.id, |epoch| {
                if epoch == body.epoch {
                    Some(body.secret_fingerprint)
                } else {
                    body.rotation
                        .filter(|rotation| rotation.previous_epoch == epoch)
                        .map(|rotation| rotation.previous_secret_fingerprint)
                }
            })?;
        let epoch = sealed.epoch;
        let held_already = self
            .secrets
            .get(epoch)
            .is_some_and(|held| secret_fingerprint(&held) == secret_fingerprint(&secret));
        if !held_already {
            let secrets = self.secrets.clone();
            tokio::task::spawn_blocking(move || secrets.put(epoch, secret))
                .await
                .map_err(|_| node_error(Error::EngineTask))?
                .map_err(SecretError::Io)?;
            let subject = format!("epoch:{epoch}");
            self.blocking(move |engine| match by {
                Adopter::User(user) => {
                    engine.audit_hunt(&user, crate::audit::Action::OpenSecret, &subject)
                }
                Adopter::Node => engine.audit_by_node(crate::audit::Action::OpenSecret, &subject),
            })
            .await
            .map_err(node_error)?
            .map_err(|error| node_error(error.into()))?;
            tracing::info!(epoch, "the secret of an epoch was taken");
        }
        self.check_rotation().await;
        Ok(SecretTaken { epoch, held_already })
    }

    /// Takes the sealed copies dropped into `<data_dir>/secrets/`: a taken file is removed, a
    /// refused one renamed `*.refused` (logged once, with the reason), and one of an epoch no
    /// adopted roster names yet is left for a later tick.
    pub(in crate::daemon) async fn take_dropped_secrets(&self) {
        let secrets = self.secrets.clone();
        let Ok(dropped) = tokio::task::spawn_blocking(move || secrets.dropped()).await else {
            return;
        };
        for (path, bytes) in dropped {
            let outcome = self.take_secret(&bytes, Adopter::Node).await;
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

    /// Begins the adopted roster's rotation when it is due and the node holds its secret, or
    /// raises the alarm that says why not (module docs).
    pub(in crate::daemon) async fn check_rotation(&self) {
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
    /// alarm's name.
    async fn rotation_step(&self) -> Option<&'static str> {
        let roster = self.rosters.current()?;
        let body = roster.body();
        let Ok((epoch, under_way)) = self
            .blocking(|engine| (engine.epoch(), engine.rotation_view().map(|view| view.new_epoch)))
            .await
        else {
            return None;
        };
        if body.epoch <= epoch || under_way == Some(body.epoch) {
            return None;
        }
        let Some(rotation) = body.rotation else { return Some("rotation_missing") };
        if rotation.previous_epoch != epoch {
            return Some("rotation_not_from_current_epoch");
        }
        let runs_under = self.secrets.get(epoch).map(|secret| secret_fingerprint(&secret));
        if runs_under != Some(rotation.previous_secret_fingerprint) {
            return Some("previous_secret_mismatch");
        }
        let Some(new_secret) = self
            .secrets
            .get(body.epoch)
            .filter(|secret| secret_fingerprint(secret) == body.secret_fingerprint)
        else {
            return Some("secret_missing");
        };
        let new_epoch = body.epoch;
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
                let subject = format!("epoch:{new_epoch}");
                let audited = self
                    .blocking(move |engine| {
                        engine.audit_by_node(crate::audit::Action::BeginRotation, &subject)
                    })
                    .await;
                if !matches!(audited, Ok(Ok(()))) {
                    tracing::error!("the rotation began but its audit line was not written");
                }
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

    /// The rotation alarm, by fixed name, if the adopted roster's rotation waits.
    pub fn rotation_alarm(&self) -> Option<&'static str> {
        *self.secrets.alarm.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A node failure met while taking a secret.
fn node_error(error: Error) -> SecretError {
    SecretError::Node(Box::new(error))
}
