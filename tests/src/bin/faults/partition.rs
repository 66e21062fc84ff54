//! The `partition` scenario: six members meshed on one bridge are cut in two halves, each half
//! publishing while cut off, and healed; then cut in three groups that publish and heal one
//! join at a time, in an order drawn from the seed. After each heal every member holds the same
//! head of every feed with an empty outbox, no fork and nothing rejected, and every account
//! published on one side matches the record watching it on another (an alert naming its
//! publisher). While cut, each group converges within itself and sees no new head from beyond.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::federation::{Federation, FeedHeads, feed_heads};
use crate::lab::Lab;
use crate::{Context, Failure, Rng};

/// Members in the federation.
const MEMBERS: usize = 6;
/// Accounts each member publishes in each cut.
const RECORDS_PER_CUT: usize = 8;
/// The shortest a cut lasts, from the cut to the heal; the seed adds up to 10 s. Longer than
/// the 25–30 s a silent link takes to be closed, so a heal needs the redial.
const MIN_CUT: Duration = Duration::from_secs(40);

/// An account's handle: the seed's low bits, the cut (0 before the first), the publisher and
/// its number; at most 15 characters, as x handles are.
fn handle(seed: u64, cut: usize, publisher: usize, number: usize) -> String {
    format!("s{:x}_{cut}_{publisher}_{number}", seed % 0x1_0000)
}

/// Runs the scenario; a failure carries the nodes' last log lines.
pub fn run(context: &Context) -> Result<(), Failure> {
    Federation::run_in_lab(context, MEMBERS, 3, |lab, federation| steps(context, lab, federation))
}

fn steps(context: &Context, lab: &Lab, federation: &mut Federation) -> Result<(), Failure> {
    let mut rng = context.rng();
    for index in 0..MEMBERS {
        federation.start(index)?;
    }
    let everyone: Vec<usize> = (0..MEMBERS).collect();
    let took = context.wait_for("every node ready with all its peers", || {
        Ok(everyone.iter().all(|&i| {
            federation.status(i).is_some_and(|s| s["ready"] == true && s["peers"] == MEMBERS - 1)
        }))
    })?;
    context.say(format!("{MEMBERS} nodes meshed in {:.1} s", took.as_secs_f64()));
    // Every member publishes once, so every feed has a head before the first cut.
    for index in 0..MEMBERS {
        federation.add(index, &[handle(context.seed, 0, index, 0)], true)?;
    }
    let took = converged(context, federation, &Watches::default(), "the first publications")?;
    context.say(format!("every feed at every member in {:.1} s", took.as_secs_f64()));

    let mut order: Vec<usize> = everyone.clone();
    rng.shuffle(&mut order);
    let mut halves = vec![0; MEMBERS];
    for (position, &index) in order.iter().enumerate() {
        halves[index] = usize::from(position >= MEMBERS / 2);
    }
    let cut = Cut { number: 1, groups: halves };
    let watches = cut.publish_while_cut(context, lab, federation, &mut rng)?;
    lab.arrange(&[0; MEMBERS])?;
    let took = converged(context, federation, &watches, "the halves to converge after the heal")?;
    context.say(format!("cut 1 healed: every member converged {:.1} s after", took.as_secs_f64()));

    rng.shuffle(&mut order);
    let mut thirds = vec![0; MEMBERS];
    for (position, &index) in order.iter().enumerate() {
        thirds[index] = position % 3;
    }
    let cut = Cut { number: 2, groups: thirds.clone() };
    let watches = cut.publish_while_cut(context, lab, federation, &mut rng)?;
    let mut joins = vec![0, 1, 2];
    rng.shuffle(&mut joins);
    let (first, second, last) = (joins[0], joins[1], joins[2]);
    let joined: Vec<usize> =
        thirds.iter().map(|&group| if group == second { first } else { group }).collect();
    lab.arrange(&joined)?;
    let pair: Vec<usize> = everyone.iter().copied().filter(|&i| joined[i] == first).collect();
    let took = context.wait_for("the first two groups to agree after their join", || {
        Ok(agree(federation, &pair)?.is_some())
    })?;
    context.say(format!(
        "cut 2: groups {first} and {second} joined first, agreed {:.1} s after",
        took.as_secs_f64()
    ));
    lab.arrange(&[first; MEMBERS])?;
    let took = converged(context, federation, &watches, "the three groups to converge")?;
    context.say(format!(
        "cut 2 healed: group {last} joined last, every member converged {:.1} s after",
        took.as_secs_f64()
    ));
    Ok(())
}

/// One cut: `groups[i]` is member i's group while it lasts.
#[derive(Debug)]
struct Cut {
    number: usize,
    groups: Vec<usize>,
}

impl Cut {
    /// Cuts the network, has every member publish and watch accounts published in another
    /// group, checks each group converges within itself and sees nothing from beyond, and
    /// holds the cut for its drawn duration. The watches to check after the heal.
    fn publish_while_cut(
        &self,
        context: &Context,
        lab: &Lab,
        federation: &Federation,
        rng: &mut Rng,
    ) -> Result<Watches, Failure> {
        let before = heads_of(federation, 0)?;
        let length = MIN_CUT + Duration::from_millis(rng.below(10_000) as u64);
        let start = Instant::now();
        lab.arrange(&self.groups)?;
        let mut watches = Watches::default();
        for publisher in 0..MEMBERS {
            let handles: Vec<String> = (0..RECORDS_PER_CUT)
                .map(|k| handle(context.seed, self.number, publisher, k))
                .collect();
            let others: Vec<usize> =
                (0..MEMBERS).filter(|&i| self.groups[i] != self.groups[publisher]).collect();
            let watcher = others[rng.below(others.len())];
            federation.add(publisher, &handles, true)?;
            let ids = federation.add(watcher, &handles, false)?;
            let expected = federation.members[publisher].id.clone();
            watches.0.extend(ids.into_iter().map(|id| (watcher, id, expected.clone())));
        }
        let groups: BTreeSet<usize> = self.groups.iter().copied().collect();
        for group in groups {
            let members: Vec<usize> = (0..MEMBERS).filter(|&i| self.groups[i] == group).collect();
            let what = format!("group {group} of cut {} to agree while cut", self.number);
            let mut agreed = None;
            context.wait_for(&what, || {
                agreed = agree(federation, &members)?;
                Ok(agreed.is_some())
            })?;
            self.nothing_from_beyond(federation, group, &before, &agreed.unwrap_or_default())?;
        }
        std::thread::sleep(length.saturating_sub(start.elapsed()));
        context.say(format!(
            "cut {}: {} groups published while cut off for {:.1} s",
            self.number,
            self.groups.iter().collect::<BTreeSet<_>>().len(),
            start.elapsed().as_secs_f64()
        ));
        Ok(watches)
    }

    /// Checks that `group`, agreed on `heads`, holds no head of another group's member newer
    /// than `before` (the heads held before the cut): the cut really cut.
    fn nothing_from_beyond(
        &self,
        federation: &Federation,
        group: usize,
        before: &FeedHeads,
        heads: &FeedHeads,
    ) -> Result<(), Failure> {
        let members: Vec<&String> = federation.members.iter().map(|m| &m.id).collect();
        for (origin, (member, ..)) in heads {
            let index = members.iter().position(|id| *id == member);
            let beyond = index.is_none_or(|index| self.groups[index] != group);
            if beyond && heads.get(origin) != before.get(origin) {
                return Err(Failure::check(format!(
                    "cut {}: group {group} holds a new head of {member}'s feed across the cut",
                    self.number
                )));
            }
        }
        Ok(())
    }
}

/// Watched records: (watcher, record id, the member whose publication it must match).
#[derive(Debug, Default)]
struct Watches(Vec<(usize, u64, String)>);

/// Waits until the federation is quiet and every watched record is alerted naming its
/// publisher ([`Federation::settle`]). The time it took.
fn converged(
    context: &Context,
    federation: &Federation,
    watches: &Watches,
    what: &str,
) -> Result<Duration, Failure> {
    let (_, took) = federation.settle(context, what, || federation.all_alerted(&watches.0))?;
    Ok(took)
}

/// The heads `members` all hold, when they hold the same ones (and all answer).
fn agree(federation: &Federation, members: &[usize]) -> Result<Option<FeedHeads>, Failure> {
    let mut agreed: Option<FeedHeads> = None;
    for &index in members {
        let Some(status) = federation.status(index) else { return Ok(None) };
        let heads = feed_heads(&status);
        match &agreed {
            Some(first) if *first != heads => return Ok(None),
            Some(_) => {}
            None => agreed = Some(heads),
        }
    }
    Ok(agreed)
}

/// The heads of member `index`'s status, or a failure when its API does not answer.
fn heads_of(federation: &Federation, index: usize) -> Result<FeedHeads, Failure> {
    let status = federation
        .status(index)
        .ok_or_else(|| Failure::check(format!("M{index}'s API does not answer")))?;
    Ok(feed_heads(&status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_fit_an_x_handle_whatever_the_seed() {
        for seed in [0, 7, 0xffff, 123_456_789, u64::MAX] {
            let handle = handle(seed, 2, MEMBERS - 1, RECORDS_PER_CUT - 1);
            assert!(handle.len() <= 15, "{handle}");
            assert!(handle.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{handle}");
        }
        assert_ne!(handle(1, 1, 0, 0), handle(1, 2, 0, 0));
    }
}
