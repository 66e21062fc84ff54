//! The analysts' curation and the suggestions in the running node (`hunt::curation`,
//! `hunt::suggestions`).
//!
//! - **A curation** (label, pin, merge, split, "not a target") is checked against the latest
//!   analytics on a copy of the curation, audited (the line names the community or the mark's
//!   id, never an account), written durably (`store::curation`) and only then put in place;
//!   curations run one at a time. A change to communities then recomputes the analytics at
//!   once, so the answer reflects it (unless a computation is already running: the next one
//!   applies it, and the answer says so).
//! - **Suggestions** are read from the latest computation's strong links, leaving out accounts
//!   that are records (any of their handles or ids, through the ledger's aliases) or marked
//!   "not a target", with the evidence posts of their edges from the ledger (one pass over the
//!   window's days). The read is audited as analytics reads are.

use std::collections::HashSet;
use std::sync::Arc;

use crossmatch_protocol::Canonical;

use super::hunt::{Hunt, HuntError, shown_form};
use super::{Error, Lane, Node, Result};
use crate::audit::Action;
use crate::hunt::Curation;
use crate::hunt::curation::{Changed, CurationError, NotATargetCategory};
use crate::hunt::ledger::EvidencePost;
use crate::hunt::suggestions::select;

/// Evidence posts listed per edge of a suggestion (newest day first).
pub const MAX_EVIDENCE_PER_EDGE: usize = 5;
/// Most suggestions in one answer.
pub const MAX_SUGGESTIONS: usize = 500;

/// An analyst's change to the curation. Accounts are canonical forms as the analytics show
/// them.
#[derive(Debug, Clone)]
pub enum CurationChange {
    /// Label a community, anchored to `seeds` (members) or its stable core.
    Label {
        /// The community.
        community: u64,
        /// The label.
        label: String,
        /// Seed accounts, members of the community.
        seeds: Option<Vec<String>>,
    },
    /// Pin or unpin a community.
    Pin {
        /// The community.
        community: u64,
        /// Pin (true) or unpin.
        pinned: bool,
    },
    /// Show `other` as part of `community` from now on.
    Merge {
        /// The community that stays.
        community: u64,
        /// The community merged into it.
        other: u64,
    },
    /// Split `accounts` off `community` into a new one.
    Split {
        /// The community.
        community: u64,
        /// Members that leave it.
        accounts: Vec<String>,
        /// The new community's label.
        label: Option<String>,
    },
    /// Mark an account "not a target" (`Some`) or remove its mark (`None`).
    NotATarget {
        /// The account.
        account: Canonical,
        /// Why; `None` removes the mark.
        category: Option<NotATargetCategory>,
    },
}

/// What a curation did.
#[derive(Debug, Clone, PartialEq)]
pub struct Curated {
    /// The community it concerns (for a split, the new one).
    pub community: Option<u64>,
    /// A mark's id (`None` when an unmarked account had no mark).
    pub mark_id: Option<u64>,
    /// Whether the analytics were recomputed with it before the answer; when false, a
    /// computation was already running and the next one applies it.
    pub applied: bool,
}

/// A suggested account: strongly linked to a labelled community, not a record, not marked.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestionView {
    /// The account (canonical form).
    pub account: String,
    /// The community's id.
    pub community: u64,
    /// The community's labels.
    pub labels: Vec<String>,
    /// Link strength: the share of the account's outgoing weight that goes into the community.
    pub strength: f64,
    /// Its edges into the community.
    pub edge_count: u32,
    /// The heaviest of them, with their evidence posts.
    pub edges: Vec<SuggestedEdge>,
}

/// An edge of a suggestion, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestedEdge {
    /// The member amplified.
    pub to: String,
    /// The edge's weight, `ln(1 + summed weight)` over the structure window.
    pub weight: f64,
    /// Evidence posts (post id and URLs), newest day first.
    pub posts: Vec<EvidencePost>,
}

/// A checked curation, ready to be audited and written.
struct Plan {
    curation: Curation,
    changed: Changed,
    action: Action,
    subject: String,
    outcome: Curated,
    recompute: bool,
}

impl Node {
    /// Applies an analyst's curation: checked (`Ok(Err(_))` when refused), audited under
    /// `user`, written durably, then applied (module docs).
    pub async fn curate(
        &self,
        change: CurationChange,
        user: String,
    ) -> Result<std::result::Result<Curated, CurationError>> {
        let hunt = self.hunt.clone();
        let _one_at_a_time = hunt.curating.lock().await;
        let now = self.clock.now_ms();
        let planning = hunt.clone();
        let plan = match tokio::task::spawn_blocking(move || planning.plan(change, now))
            .await
            .map_err(|_| Error::EngineTask)??
        {
            Ok(plan) => plan,
            Err(refused) => return Ok(Err(refused)),
        };
        let (action, subject) = (plan.action, plan.subject.clone());
        self.call(Lane::Api, move |engine| engine.audit_hunt(&user, action, &subject)).await??;
        let writing = hunt.clone();
        let curated = tokio::task::spawn_blocking(move || writing.commit(plan))
            .await
            .map_err(|_| Error::EngineTask)??;
        Ok(Ok(curated))
    }

    /// The curation, with accounts as the analytics show them: what answers flag and what
    /// shares and the priority ranking leave out ([`Curation::is_not_a_target`]).
    pub fn curation(&self) -> Arc<Curation> {
        self.hunt.shown().0
    }

    /// Up to `limit` suggestions (for `community`, or for every labelled one), strongest first,
    /// with their evidence. Audited under `user` first.
    pub async fn suggestions(
        &self,
        community: Option<u64>,
        limit: usize,
        user: String,
    ) -> Result<Vec<SuggestionView>> {
        let what = match community {
            Some(id) => format!("analytics:suggestions.community.{id}"),
            None => "analytics:suggestions".to_owned(),
        };
        let records = self
            .call(Lane::Api, move |engine| {
                engine.audit_hunt(&user, Action::ReadAnalytics, &what)?;
                engine.record_canonicals()
            })
            .await??;
        let hunt = self.hunt.clone();
        let limit = limit.min(MAX_SUGGESTIONS);
        Ok(tokio::task::spawn_blocking(move || hunt.suggest(&records, community, limit))
            .await
            .map_err(|_| Error::EngineTask)??)
    }
}

impl Hunt {
    /// The shown curation and the latest strong links.
    pub(super) fn shown(&self) -> (Arc<Curation>, Arc<Vec<crate::hunt::suggestions::Link>>) {
        self.shown.lock().map(|held| held.clone()).unwrap_or_default()
    }

    /// Checks a change against the latest analytics, on a copy of the curation.
    fn plan(
        &self,
        change: CurationChange,
        now_ms: u64,
    ) -> std::result::Result<std::result::Result<Plan, CurationError>, HuntError> {
        let results = self.results();
        let mut curation = self.curation.lock().map_err(|_| HuntError::Poisoned)?.clone();
        let outcome = |community, mark_id| Curated { community, mark_id, applied: true };
        let planned = match change {
            CurationChange::Label { community, label, seeds } => {
                curation.label(&results, community, &label, seeds.as_deref()).map(|changed| {
                    let subject = format!("community:{community}");
                    (changed, Action::LabelCommunity, subject, outcome(Some(community), None))
                })
            }
            CurationChange::Pin { community, pinned } => {
                curation.pin(&results, community, pinned).map(|changed| {
                    let state = if pinned { "pinned" } else { "unpinned" };
                    let subject = format!("community:{community}_{state}");
                    (changed, Action::PinCommunity, subject, outcome(Some(community), None))
                })
            }
            CurationChange::Merge { community, other } => {
                curation.merge(&results, community, other).map(|changed| {
                    let subject = format!("community:{other}_into.{community}");
                    (changed, Action::MergeCommunities, subject, outcome(Some(community), None))
                })
            }
            CurationChange::Split { community, accounts, label } => curation
                .split(&results, community, &accounts, label.as_deref())
                .map(|(changed, new_id)| {
                    let subject = format!("community:{community}_to.{new_id}");
                    (changed, Action::SplitCommunity, subject, outcome(Some(new_id), None))
                }),
            CurationChange::NotATarget { account, category } => {
                let form = {
                    let ledger = self.ledger.lock().map_err(|_| HuntError::Poisoned)?;
                    shown_form(&ledger, account.as_str())
                        .unwrap_or_else(|| account.as_str().to_owned())
                };
                match category {
                    Some(category) => {
                        curation.mark_not_a_target(&form, category, now_ms).map(|(changed, id)| {
                            let subject = format!("not_a_target:mark.{id}_{category}");
                            (changed, Action::MarkNotATarget, subject, outcome(None, Some(id)))
                        })
                    }
                    None => Ok(match curation.unmark_not_a_target(&form) {
                        Some((changed, id)) => {
                            let subject = format!("not_a_target:mark.{id}_removed");
                            (changed, Action::MarkNotATarget, subject, outcome(None, Some(id)))
                        }
                        None => {
                            let changed = Changed { meta: curation.meta(), ..Changed::default() };
                            let subject = "not_a_target:none_removed".to_owned();
                            (changed, Action::MarkNotATarget, subject, outcome(None, None))
                        }
                    }),
                }
            }
        };
        Ok(planned.map(|(changed, action, subject, outcome)| {
            let recompute = action != Action::MarkNotATarget;
            Plan { curation, changed, action, subject, outcome, recompute }
        }))
    }

    /// Writes a checked change durably, puts it in place and applies it.
    fn commit(&self, plan: Plan) -> std::result::Result<Curated, HuntError> {
        let mut txn = self.store.txn();
        txn.put_curation(&plan.changed);
        txn.commit_durable()?;
        *self.curation.lock().map_err(|_| HuntError::Poisoned)? = plan.curation;
        {
            let ledger = self.ledger.lock().map_err(|_| HuntError::Poisoned)?;
            let curation = self.curation.lock().map_err(|_| HuntError::Poisoned)?;
            let shown = curation.resolved(|form| shown_form(&ledger, form));
            self.shown.lock().map_err(|_| HuntError::Poisoned)?.0 = Arc::new(shown);
        }
        let mut outcome = plan.outcome;
        if plan.recompute {
            self.mark_changed();
            outcome.applied = self.compute_now()?;
        }
        Ok(outcome)
    }

    /// Suggestions from the latest strong links (see [`Node::suggestions`]).
    fn suggest(
        &self,
        records: &HashSet<String>,
        community: Option<u64>,
        limit: usize,
    ) -> std::result::Result<Vec<SuggestionView>, HuntError> {
        let results = self.results();
        let (curation, strong) = self.shown();
        let ledger = self.ledger.lock().map_err(|_| HuntError::Poisoned)?;
        let mut excluded: HashSet<String> = records.clone();
        for record in records.iter().filter(|r| r.starts_with("v1|account")) {
            if let Some(shown) = shown_form(&ledger, record) {
                excluded.insert(shown);
            }
        }
        let picked = select(&strong, community, limit, |account| {
            excluded.contains(account) || curation.is_not_a_target(account)
        });
        let root = |name: &str| {
            let canonical: Canonical = name.parse().ok()?;
            ledger.account_of(&canonical).map(|account| ledger.root(account))
        };
        let mut pairs = HashSet::new();
        for link in &picked {
            let Some(from) = root(&link.account) else { continue };
            pairs.extend(link.edges.iter().filter_map(|(to, _)| Some((from, root(to)?))));
        }
        let evidence = match results.structure_window {
            Some(window) if !pairs.is_empty() => ledger.edges_evidence(
                window,
                |from, to| pairs.contains(&(from, to)),
                MAX_EVIDENCE_PER_EDGE,
            ),
            _ => Default::default(),
        };
        let views = picked
            .into_iter()
            .map(|link| {
                let from = root(&link.account);
                let edges = link
                    .edges
                    .iter()
                    .map(|(to, weight)| SuggestedEdge {
                        to: to.clone(),
                        weight: *weight,
                        posts: from
                            .zip(root(to))
                            .and_then(|pair| evidence.get(&pair).cloned())
                            .unwrap_or_default(),
                    })
                    .collect();
                SuggestionView {
                    account: link.account.clone(),
                    community: link.community,
                    labels: results
                        .community(link.community)
                        .map(|c| c.labels.clone())
                        .unwrap_or_default(),
                    strength: link.strength,
                    edge_count: link.edge_count,
                    edges,
                }
            })
            .collect();
        Ok(views)
    }
}
