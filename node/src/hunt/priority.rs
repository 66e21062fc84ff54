//! The priority score behind the referral queue (docs/HUNT.md §6): a weighted sum of percentile
//! ranks of original-post activity, distinct amplifiers, influence, cross-border reach (how many
//! other members hold the token) and the link to a labelled or shared community. Accounts whose
//! takedown state is `removed` drop out of the queue (and out of the ranks); `reinstated` ones
//! come back. Pure: the caller gathers the inputs.

/// The weights of the five terms (the config's `[hunt.priority]`). They need not sum to 1;
/// the score is their weighted sum, so with the defaults (which do) it lies in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriorityWeights {
    /// Original posts in the activity window (default 0.25).
    pub activity: f64,
    /// Distinct amplifiers in the structure window (default 0.2).
    pub amplifiers: f64,
    /// PageRank (default 0.2).
    pub influence: f64,
    /// Members other than this one holding the token (default 0.15).
    pub reach: f64,
    /// Link to a labelled or shared community (default 0.2).
    pub link: f64,
}

impl Default for PriorityWeights {
    fn default() -> Self {
        Self { activity: 0.25, amplifiers: 0.2, influence: 0.2, reach: 0.15, link: 0.2 }
    }
}

/// What the score needs of one account.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PriorityInput {
    /// Original posts in the activity window.
    pub originals: u32,
    /// Distinct amplifiers in the structure window.
    pub amplifiers: u32,
    /// PageRank; 0 for an account that did not post.
    pub influence: f64,
    /// Other members holding its token (their live adds).
    pub reach: u32,
    /// Its community is labelled or was shared by this node, or another member tags its token.
    pub linked: bool,
    /// Its latest takedown state is `removed` (a later `reinstated` clears it).
    pub removed: bool,
    /// An analyst marked it "not a target" (`hunt::curation`): never referred.
    pub not_a_target: bool,
}

/// One account's score and its terms (each a percentile rank in [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriorityTerms {
    /// Percentile rank of original posts.
    pub activity: f64,
    /// Percentile rank of distinct amplifiers.
    pub amplifiers: f64,
    /// Percentile rank of PageRank.
    pub influence: f64,
    /// Percentile rank of cross-border reach.
    pub reach: f64,
    /// Percentile rank of the community link.
    pub link: f64,
    /// The weighted sum.
    pub score: f64,
}

/// Scores every account of `inputs`, in their order; `None` for removed accounts and accounts
/// marked "not a target", which neither enter the queue nor rank the others. An account's
/// percentile rank in a term is the share of the other ranked accounts with a strictly lower
/// value: the top account alone scores 1, ties share the rank of the lowest of them, and a
/// term in which every account is equal ranks them all 0.
pub fn priority(inputs: &[PriorityInput], weights: &PriorityWeights) -> Vec<Option<PriorityTerms>> {
    let ranked: Vec<usize> =
        (0..inputs.len()).filter(|&i| !inputs[i].removed && !inputs[i].not_a_target).collect();
    let ranks = |value: &dyn Fn(&PriorityInput) -> f64| -> Vec<f64> {
        let values: Vec<f64> = ranked.iter().map(|&i| value(&inputs[i])).collect();
        percentile_ranks(&values)
    };
    let activity = ranks(&|x| f64::from(x.originals));
    let amplifiers = ranks(&|x| f64::from(x.amplifiers));
    let influence = ranks(&|x| x.influence);
    let reach = ranks(&|x| f64::from(x.reach));
    let link = ranks(&|x| if x.linked { 1.0 } else { 0.0 });
    let mut out = vec![None; inputs.len()];
    for (position, &index) in ranked.iter().enumerate() {
        let terms = PriorityTerms {
            activity: activity[position],
            amplifiers: amplifiers[position],
            influence: influence[position],
            reach: reach[position],
            link: link[position],
            score: 0.0,
        };
        let score = weights.activity * terms.activity
            + weights.amplifiers * terms.amplifiers
            + weights.influence * terms.influence
            + weights.reach * terms.reach
            + weights.link * terms.link;
        out[index] = Some(PriorityTerms { score, ..terms });
    }
    out
}

/// For each value, the share of the others that are strictly lower (0 for a single value).
fn percentile_ranks(values: &[f64]) -> Vec<f64> {
    if values.len() < 2 {
        return vec![0.0; values.len()];
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let others = (values.len() - 1) as f64;
    values
        .iter()
        .map(|value| sorted.partition_point(|x| x.total_cmp(value).is_lt()) as f64 / others)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(originals: u32, amplifiers: u32, influence: f64, reach: u32) -> PriorityInput {
        PriorityInput { originals, amplifiers, influence, reach, ..PriorityInput::default() }
    }

    #[test]
    fn each_term_is_a_percentile_rank_and_the_score_their_weighted_sum() {
        let inputs = [
            input(10, 1, 0.5, 0),
            input(5, 3, 0.1, 2),
            PriorityInput { linked: true, ..input(1, 2, 0.2, 0) },
        ];
        let scored = priority(&inputs, &PriorityWeights::default());
        let first = scored[0].unwrap();
        assert_eq!(
            (first.activity, first.amplifiers, first.influence, first.reach, first.link),
            (1.0, 0.0, 1.0, 0.0, 0.0)
        );
        let second = scored[1].unwrap();
        assert_eq!((second.activity, second.amplifiers, second.reach), (0.5, 1.0, 1.0));
        let third = scored[2].unwrap();
        assert_eq!((third.link, third.influence), (1.0, 0.5));
        // Ties share the lowest rank: the first and third hold the token nowhere else.
        assert_eq!(scored[0].unwrap().reach, scored[2].unwrap().reach);
        let w = PriorityWeights::default();
        let expected = w.activity * 0.5 + w.amplifiers + w.influence * 0.0 + w.reach;
        assert!((second.score - expected).abs() < 1e-12);
    }

    #[test]
    fn removed_accounts_drop_out_and_reinstated_ones_rank_again() {
        let weights = PriorityWeights::default();
        let mut inputs = [input(100, 50, 0.9, 3), input(1, 1, 0.01, 0), input(2, 2, 0.02, 0)];
        let before = priority(&inputs, &weights);
        assert_eq!(before[0].unwrap().activity, 1.0);
        inputs[0].removed = true;
        let removed = priority(&inputs, &weights);
        assert!(removed[0].is_none(), "a removed account leaves the queue");
        let mut marked = inputs;
        marked[0].removed = false;
        marked[0].not_a_target = true;
        assert!(priority(&marked, &weights)[0].is_none(), "so does one not to be targeted");
        assert_eq!(removed[2].unwrap().activity, 1.0, "and no longer ranks the others");
        inputs[0].removed = false;
        assert_eq!(priority(&inputs, &weights), before, "reinstated: back where it was");
    }

    #[test]
    fn weights_change_the_order() {
        let inputs = [input(10, 0, 0.0, 0), input(0, 0, 0.0, 4)];
        let by_activity = PriorityWeights { reach: 0.0, ..PriorityWeights::default() };
        let by_reach = PriorityWeights { activity: 0.0, ..PriorityWeights::default() };
        let a = priority(&inputs, &by_activity);
        assert!(a[0].unwrap().score > a[1].unwrap().score);
        let r = priority(&inputs, &by_reach);
        assert!(r[1].unwrap().score > r[0].unwrap().score);
    }
}
