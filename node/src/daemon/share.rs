//! Across borders, in the running node (docs/HUNT.md §5 and §6):
//! - a shared record's `add` carries its account's observed activity, rounded down to a bucket,
//!   unless the analyst stated a figure (docs/PROTOCOL.md §2.2, "Activity per day, when
//!   measured"); the figure is taken when the record is added, from the latest analytics;
//! - a community share is previewed (after a recompute with the seeded runs, so confidences
//!   are fresh), and the share quotes the preview's id and publishes exactly its accounts;
//! - the overlap of other members' shared communities with what this node holds and observes
//!   is computed here, locally;
//! - the referral queue gathers the priority score's inputs from the analytics and the
//!   engine.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crossmatch_protocol::{Handling, Status, Token};

use super::{Error, NewRecord, Node, Result};
use crate::engine::{CommunityShare, ShareHolding, SharedAccount, TokenFacts};
use crate::hunt::priority::{PriorityInput, PriorityTerms, priority};

impl Node {
    /// Fills in `activity_per_day` of the shared records that state none and whose account the
    /// hunt observes (a blocking look-up under the hunt's lock, never the engine's).
    pub(super) async fn with_observed_activity(
        &self,
        mut records: Vec<NewRecord>,
    ) -> Result<Vec<NewRecord>> {
        let wanted: Vec<usize> = (0..records.len())
            .filter(|&i| {
                let record = &records[i];
                record.share && record.handling != Handling::H3 && record.activity_per_day.is_none()
            })
            .collect();
        if wanted.is_empty() {
            return Ok(records);
        }
        let accounts: Vec<_> = wanted.iter().map(|&i| records[i].identifiers.clone()).collect();
        let hunt = self.hunt.clone();
        let figures = tokio::task::spawn_blocking(move || hunt.observed_activity(&accounts))
            .await
            .map_err(|_| Error::EngineTask)??;
        for (index, figure) in wanted.into_iter().zip(figures) {
            records[index].activity_per_day = figure;
        }
        Ok(records)
    }
}

/// How long a community share preview can be quoted by the share that publishes it.
pub const PREVIEW_LIFETIME_MS: u64 = 15 * 60 * 1000;
/// Most previews held at once; a newer one drops the oldest.
pub const MAX_PREVIEWS: usize = 16;
/// Longest the preview waits for a recompute already running before it runs its own.
const PREVIEW_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a share will say of its accounts, decided at the preview: the handling, category,
/// evaluation and expiry of its algorithmic records and its tags.
#[derive(Debug, Clone)]
pub struct ShareParameters {
    /// Category of the algorithmic records.
    pub category: String,
    /// Handling code (H0–H2).
    pub handling: Handling,
    /// Evaluation of the algorithmic records (default `X4`: reliability and credibility
    /// cannot be judged, as fits an algorithm's grouping).
    pub evaluation: crossmatch_protocol::Evaluation,
    /// When the tags and algorithmic records expire (Unix ms).
    pub expires_at_ms: u64,
}

/// What a preview found: exactly what the share quoting it publishes.
#[derive(Debug, Clone)]
pub struct SharePreview {
    /// The id the share must quote (hex of 16 random bytes).
    pub preview_id: String,
    /// The community.
    pub community: u64,
    /// Accounts that would leave: K.
    pub included: usize,
    /// Of those, accounts no analyst reviewed (not records; they become algorithmic records): J.
    pub not_reviewed: usize,
    /// Members that would receive them: N (every other roster member).
    pub members: usize,
    /// Accounts below the confidence threshold (or with none yet), excluded: M.
    pub below_threshold: usize,
    /// Accounts that did not post in the window (only mentioned, reposted or replied to),
    /// excluded.
    pub mention_only: usize,
    /// Accounts marked "not a target", excluded.
    pub not_a_target: usize,
    /// Accounts held only by watches or H3 records, excluded (an analyst chose not to share).
    pub withheld: usize,
    /// The threshold applied.
    pub min_confidence: f64,
    /// The parameters the share will use.
    pub parameters: ShareParameters,
    /// Until when the share can quote it (Unix ms).
    pub valid_until_ms: u64,
}

/// What members learn from a share, in short (docs/PROTOCOL.md §1.10 has the whole text).
pub const WHAT_MEMBERS_LEARN: &str = "Each member learns, for accounts it holds or observes \
    itself, that they belong to one community you track, and how many of its own accounts \
    overlap it. Members can compute tokens of handles they guess (the federation secret is \
    shared), so they can learn which of those handles you grouped together; the raw \
    identifiers of accounts they cannot name stay hidden.";

/// The previews held, by id.
#[derive(Debug, Default)]
pub struct Previews {
    held: Vec<(SharePreview, Vec<SharedAccount>)>,
}

/// Why a share or preview failed, beyond the node's own errors.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// No community with that id in the latest analytics.
    #[error("no community with that id")]
    NoCommunity,
    /// The preview id is unknown, used, expired, or of another community.
    #[error("no such preview for this community: it expired or was used; preview again")]
    NoPreview,
    /// No account of the community qualifies.
    #[error("no account of this community qualifies for a share")]
    Empty,
    /// An analyst marked an account of the preview "not a target" since: nothing was shared.
    #[error("an account of the preview was marked not a target since; preview again")]
    MarkedSincePreview,
    /// The computation that gives fresh confidences could not start in time.
    #[error("the analytics are busy; preview again shortly")]
    Busy,
    /// The system's random source failed.
    #[error("no randomness for the snapshot's pseudonym")]
    NoRandomness,
    /// The node failed.
    #[error(transparent)]
    Node(#[from] Error),
}

impl From<crate::engine::Error> for ShareError {
    fn from(error: crate::engine::Error) -> Self {
        Self::Node(Error::Engine(error))
    }
}

/// What a share published.
#[derive(Debug, Clone)]
pub struct ShareView {
    /// The snapshot's number.
    pub snapshot: u64,
    /// Accounts tagged.
    pub tags: usize,
    /// Algorithmic records made.
    pub records: usize,
    /// The snapshot's pseudonym (hex), as members see it.
    pub pseudonym: String,
}

/// One remote shared community that overlaps this node's holdings or observations.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlapView {
    /// The member that shared it.
    pub member_id: Option<String>,
    /// Its snapshot's pseudonym (hex).
    pub pseudonym: String,
    /// Accounts it tags.
    pub size: usize,
    /// Of those, held here by a record or watch.
    pub held: usize,
    /// Of those, observed here.
    pub observed: usize,
    /// This node's communities holding observed accounts of it: (community id, accounts).
    pub communities: Vec<(u64, usize)>,
}

impl Node {
    /// Previews a community share: recomputes the analytics with the seeded runs first (fresh
    /// confidences), then says exactly what would leave. Audited as an analytics read.
    pub async fn preview_share(
        &self,
        community: u64,
        parameters: ShareParameters,
        user: String,
    ) -> std::result::Result<SharePreview, ShareError> {
        self.call(super::calls::Lane::Api, move |engine| {
            engine.audit_hunt(
                &user,
                crate::audit::Action::ReadAnalytics,
                &format!("analytics:share-preview:{community}"),
            )
        })
        .await??;
        let hunt = self.hunt.clone();
        let fresh = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            while !hunt.compute(true)? {
                if started.elapsed() > PREVIEW_WAIT {
                    return Ok(false);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Ok::<_, super::HuntError>(true)
        })
        .await
        .map_err(|_| Error::EngineTask)?
        .map_err(Error::from)?;
        if !fresh {
            return Err(ShareError::Busy);
        }
        let results = self.hunt.results();
        let stats = results.community(community).ok_or(ShareError::NoCommunity)?;
        let curation = self.curation();
        let threshold = self.hunt.settings.share_min_confidence;
        let days = results.activity_window.map_or(1, |w| w.last.0.saturating_sub(w.first.0) + 1);
        let mut preview = SharePreview {
            preview_id: hex::encode(random_bytes().ok_or(ShareError::NoRandomness)?),
            community,
            included: 0,
            not_reviewed: 0,
            members: self.roster.contacts().len().saturating_sub(1),
            below_threshold: 0,
            mention_only: 0,
            not_a_target: 0,
            withheld: 0,
            min_confidence: threshold,
            parameters,
            valid_until_ms: self.clock.now_ms() + PREVIEW_LIFETIME_MS,
        };
        let mut candidates = Vec::new();
        for &member in &stats.members {
            let account = &results.accounts[member];
            if account.structure_activity.posts() == 0 {
                preview.mention_only += 1;
            } else if curation.is_not_a_target(&account.account) {
                preview.not_a_target += 1;
            } else if account.confidence.is_none_or(|c| c < threshold) {
                preview.below_threshold += 1;
            } else if let Ok(canonical) = account.account.parse::<crossmatch_protocol::Canonical>()
            {
                let bucket = crossmatch_protocol::activity_bucket(
                    u64::from(account.activity.posts()) / u64::from(days),
                );
                candidates.push((canonical, (bucket > 0).then_some(bucket)));
            }
        }
        let canonicals: Vec<_> = candidates.iter().map(|(c, _)| c.clone()).collect();
        let holdings = self
            .call(super::calls::Lane::Api, move |engine| engine.share_holdings(&canonicals))
            .await??;
        let mut accounts = Vec::new();
        for ((account, activity_per_day), holding) in candidates.into_iter().zip(holdings) {
            match holding {
                ShareHolding::Withheld => preview.withheld += 1,
                ShareHolding::NotRecorded => preview.not_reviewed += 1,
                ShareHolding::Shared => {}
            }
            if holding != ShareHolding::Withheld {
                accounts.push(SharedAccount { account, holding, activity_per_day });
            }
        }
        preview.included = accounts.len();
        let mut previews = self.hunt.previews.lock().map_err(|_| Error::EngineTask)?;
        let now = self.clock.now_ms();
        previews.held.retain(|(held, _)| held.valid_until_ms > now);
        if previews.held.len() >= MAX_PREVIEWS {
            previews.held.remove(0);
        }
        previews.held.push((preview.clone(), accounts));
        Ok(preview)
    }

    /// Publishes exactly what the preview `preview_id` of `community` showed, with its
    /// parameters, under a fresh random pseudonym; the preview is used up. Audited as a share.
    pub async fn share_community(
        &self,
        community: u64,
        preview_id: String,
        user: String,
    ) -> std::result::Result<ShareView, ShareError> {
        let (preview, accounts) = {
            let mut previews = self.hunt.previews.lock().map_err(|_| Error::EngineTask)?;
            let now = self.clock.now_ms();
            let at = previews
                .held
                .iter()
                .position(|(p, _)| {
                    p.preview_id == preview_id && p.community == community && p.valid_until_ms > now
                })
                .ok_or(ShareError::NoPreview)?;
            previews.held.remove(at)
        };
        if accounts.is_empty() {
            return Err(ShareError::Empty);
        }
        // No curation lands between this check and the share's write: a mark made after the
        // preview refuses the share.
        let _no_curation = self.hunt.curating.lock().await;
        let curation = self.curation();
        if accounts.iter().any(|shared| curation.is_not_a_target(shared.account.as_str())) {
            return Err(ShareError::MarkedSincePreview);
        }
        let pseudonym = random_bytes().ok_or(ShareError::NoRandomness)?;
        let parameters = preview.parameters;
        let share = CommunityShare {
            community,
            accounts,
            category: parameters.category,
            handling: parameters.handling,
            evaluation: parameters.evaluation,
            expires_at_ms: parameters.expires_at_ms,
            pseudonym,
        };
        let outcome = self
            .call(super::calls::Lane::Api, move |engine| engine.share_community(share, &user))
            .await??;
        self.publish.notify_one();
        Ok(ShareView {
            snapshot: outcome.snapshot,
            tags: outcome.tags,
            records: outcome.records.len(),
            pseudonym: hex::encode(pseudonym),
        })
    }

    /// Other members' shared communities that overlap what this node holds or observes:
    /// observed accounts' tokens are computed and matched here, never shared. Audited as an
    /// analytics read.
    pub async fn overlaps(&self, user: String) -> Result<Vec<OverlapView>> {
        let results = self.hunt.results();
        let observed: Vec<(String, u64)> =
            results.accounts.iter().map(|a| (a.account.clone(), a.community)).collect();
        let found = self
            .call(super::calls::Lane::Api, move |engine| {
                engine.audit_hunt(
                    &user,
                    crate::audit::Action::ReadAnalytics,
                    "analytics:overlaps",
                )?;
                let by_token: HashMap<Token, u64> = observed
                    .iter()
                    .filter_map(|(name, community)| {
                        let canonical = name.parse::<crossmatch_protocol::Canonical>().ok()?;
                        Some((engine.token(&canonical), *community))
                    })
                    .collect();
                let mut groups: BTreeMap<([u8; 32], [u8; 16]), OverlapCounts> = BTreeMap::new();
                for tag in engine.remote_tags()? {
                    let group = groups.entry((tag.origin, tag.pseudonym)).or_default();
                    group.0 += 1;
                    if engine.holds(&tag.token)? {
                        group.1 += 1;
                    }
                    if let Some(community) = by_token.get(&tag.token) {
                        group.2 += 1;
                        *group.3.entry(*community).or_default() += 1;
                    }
                }
                Ok::<_, crate::engine::Error>(groups)
            })
            .await??;
        Ok(found
            .into_iter()
            .filter(|(_, (_, held, observed, _))| held + observed > 0)
            .map(|((origin, pseudonym), (size, held, observed, communities))| OverlapView {
                member_id: self.roster.member_id(&origin),
                pseudonym: hex::encode(pseudonym),
                size,
                held,
                observed,
                communities: communities.into_iter().collect(),
            })
            .collect())
    }

    /// The referral queue: every observed account that is not removed, with its priority
    /// score and terms (`hunt/priority.rs`), highest first. Audited as an analytics read.
    pub async fn priority_queue(
        &self,
        user: String,
    ) -> Result<(Arc<crate::hunt::Analytics>, Vec<(usize, PriorityTerms)>)> {
        let results = self.hunt.results();
        let names: Vec<String> = results.accounts.iter().map(|a| a.account.clone()).collect();
        let (facts, shared, records_removed) = self
            .call(super::calls::Lane::Api, move |engine| {
                engine.audit_hunt(
                    &user,
                    crate::audit::Action::ReadAnalytics,
                    "analytics:priority",
                )?;
                let tokens: Vec<Option<Token>> = names
                    .iter()
                    .map(|name| {
                        name.parse::<crossmatch_protocol::Canonical>()
                            .ok()
                            .map(|c| engine.token(&c))
                    })
                    .collect();
                let known: Vec<Token> = tokens.iter().flatten().copied().collect();
                let mut facts = engine.token_facts(&known)?.into_iter();
                let facts: Vec<TokenFacts> = tokens
                    .iter()
                    .map(|token| token.and_then(|_| facts.next()).unwrap_or_default())
                    .collect();
                let shared: HashSet<u64> = engine
                    .own_snapshots()?
                    .into_iter()
                    .map(|(community, _, _)| community)
                    .collect();
                // The records' own statuses and every member's on their tokens (clamped): an
                // account this unit itself reported removed leaves its own queue too.
                let records =
                    crate::hunt::successors::removed_accounts(&engine.account_statuses()?)
                        .into_iter()
                        .map(|removed| (removed.account, !removed.reinstated))
                        .collect::<HashMap<String, bool>>();
                Ok::<_, crate::engine::Error>((facts, shared, records))
            })
            .await??;
        let labelled: HashSet<u64> = results
            .communities
            .iter()
            .filter(|c| !c.labels.is_empty() || shared.contains(&c.id))
            .map(|c| c.id)
            .collect();
        let curation = self.curation();
        let inputs: Vec<PriorityInput> = results
            .accounts
            .iter()
            .zip(&facts)
            .map(|(account, facts)| PriorityInput {
                originals: account.activity.originals,
                amplifiers: account.distinct_amplifiers,
                influence: account.pagerank.unwrap_or(0.0),
                reach: facts.members_holding,
                linked: labelled.contains(&account.community) || facts.tagged,
                removed: match records_removed.get(&account.account) {
                    Some(&removed) => removed,
                    None => facts.status.is_some_and(|(status, _)| status == Status::Removed),
                },
                not_a_target: curation.is_not_a_target(&account.account),
            })
            .collect();
        let scored = priority(&inputs, &self.hunt.settings.priority);
        let mut queue: Vec<(usize, PriorityTerms)> = scored
            .into_iter()
            .enumerate()
            .filter_map(|(index, terms)| Some((index, terms?)))
            .collect();
        queue.sort_by(|a, b| {
            b.1.score
                .total_cmp(&a.1.score)
                .then_with(|| results.accounts[a.0].account.cmp(&results.accounts[b.0].account))
        });
        Ok((results, queue))
    }
}

/// A remote snapshot's counts while the overlap is gathered: tagged, held, observed, and the
/// observed accounts per local community.
type OverlapCounts = (usize, usize, usize, BTreeMap<u64, usize>);

/// 16 random bytes; `None` if the system's random source fails (never all zeros instead).
fn random_bytes() -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes)
}
