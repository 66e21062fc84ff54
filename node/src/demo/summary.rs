//! The demo's closing figures: the matches between each pair of members, the latency from an
//! add's signature to the alert it raised elsewhere (p50 and p99 of the matches made while both
//! members were up; those the outage's member missed while down, which waited for its return,
//! apart), and the payload bytes each member's mesh sent; then how to reach each member's API.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;

use super::outage::Downtime;
use crate::daemon::{AlertState, AlertView};

/// The open matches between each pair of members (`i < j`): the tokens member `i` holds an
/// open alert on naming member `j` (the same as `j`'s alerts naming `i`, once both converged).
/// `alerts[i]` are member `i`'s alerts; `ids` the members' ids, by index.
pub fn matches_per_pair(
    alerts: &[Vec<AlertView>],
    ids: &[String],
) -> BTreeMap<(usize, usize), usize> {
    let mut pairs = BTreeMap::new();
    for (i, member_alerts) in alerts.iter().enumerate() {
        for alert in member_alerts.iter().filter(|alert| alert.state == AlertState::Open) {
            for counterpart in &alert.counterparts {
                let Some(j) = counterpart
                    .member_id
                    .as_ref()
                    .and_then(|id| ids.iter().position(|known| known == id))
                else {
                    continue;
                };
                if i < j {
                    *pairs.entry((i, j)).or_insert(0) += 1;
                }
            }
        }
    }
    pairs
}

/// Latencies (ms) from an add's signature to its receipt at a member that raised an alert on
/// it (every counterpart not found by a local add: those were already held), sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latencies {
    /// Matches made while both members were up.
    pub while_up: Vec<u64>,
    /// Matches the member that was down missed while it was down: they waited for its return.
    pub missed: Vec<u64>,
}

/// The latencies of every member's alerts (`alerts[i]` are member `i`'s), the matches
/// `downtime` made its member miss apart.
pub fn latencies_ms(alerts: &[Vec<AlertView>], downtime: Option<&Downtime>) -> Latencies {
    let mut latencies = Latencies::default();
    for (member, member_alerts) in alerts.iter().enumerate() {
        for counterpart in member_alerts.iter().flat_map(|alert| &alert.counterparts) {
            if counterpart.retro {
                continue;
            }
            let (created, received) = (counterpart.created_at_ms, counterpart.received_at_ms);
            let latency = received.saturating_sub(created);
            if downtime.is_some_and(|down| down.missed(member, created, received)) {
                latencies.missed.push(latency);
            } else {
                latencies.while_up.push(latency);
            }
        }
    }
    latencies.while_up.sort_unstable();
    latencies.missed.sort_unstable();
    latencies
}

/// The `q`-th percentile (0 < q <= 100) of `sorted` by the nearest-rank method; `None` when
/// it is empty.
pub fn percentile(sorted: &[u64], q: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(1, 100) as usize * sorted.len()).div_ceil(100);
    sorted.get(rank.saturating_sub(1)).copied()
}

/// "1 match", "2 matches".
fn matches(count: usize) -> String {
    if count == 1 { "1 match".to_owned() } else { format!("{count} matches") }
}

/// Writes the summary: `alerts[i]` and `bytes_sent[i]` are member `i`'s, `ids` their ids;
/// `downtime` is the outage's.
pub fn write(
    out: &mut impl Write,
    ids: &[String],
    alerts: &[Vec<AlertView>],
    bytes_sent: &[u64],
    downtime: Option<&Downtime>,
) -> std::io::Result<()> {
    writeln!(out, "summary")?;
    writeln!(out, "   matches per pair of members (open alerts):")?;
    let pairs = matches_per_pair(alerts, ids);
    let mut line = String::new();
    for (n, ((i, j), count)) in pairs.iter().enumerate() {
        line.push_str(&format!("   {:>11} {count:>5}", format!("{}-{}", ids[*i], ids[*j])));
        if n % 4 == 3 {
            writeln!(out, "  {}", line.trim_end())?;
            line.clear();
        }
    }
    if !line.is_empty() {
        writeln!(out, "  {}", line.trim_end())?;
    }
    let latencies = latencies_ms(alerts, downtime);
    let up = &latencies.while_up;
    match (percentile(up, 50), percentile(up, 99)) {
        (Some(p50), Some(p99)) => writeln!(
            out,
            "   latency from an add's signature to the alert at another member, over the {} made while both members were up: p50 {p50} ms, p99 {p99} ms",
            matches(up.len())
        )?,
        _ => writeln!(out, "   latency: no match arrived from another member while both were up")?,
    }
    let missed = &latencies.missed;
    if let (Some(down), Some(p50), Some(max)) = (downtime, percentile(missed, 50), missed.last()) {
        let who = ids.get(down.member).map_or("?", String::as_str);
        let when = if missed.len() == 1 {
            format!("{max} ms after its signature")
        } else {
            format!("p50 {p50} ms and at most {max} ms after their signature")
        };
        writeln!(
            out,
            "   apart from those: the {} {who} missed while it was down came by sync once it was back, {when} (the outage's wait, not the mesh's speed)",
            matches(missed.len())
        )?;
    }
    let total: u64 = bytes_sent.iter().sum();
    let each: Vec<String> =
        ids.iter().zip(bytes_sent).map(|(id, bytes)| format!("{id} {bytes}")).collect();
    writeln!(
        out,
        "   payload bytes sent by the mesh (batches published and sync answers, before Noise and Yamux; each since its member last started): {total} ({})",
        each.join(", ")
    )?;
    Ok(())
}

/// Writes how to reach each member's API with the analyst's command line.
pub fn write_access(
    out: &mut impl Write,
    ids: &[String],
    apis: &[(SocketAddr, String)],
) -> std::io::Result<()> {
    writeln!(out, "each member's API, for as long as the demo runs:")?;
    for (id, (address, token)) in ids.iter().zip(apis) {
        writeln!(
            out,
            "   {id:<8} CROSSMATCH_API=http://{address} CROSSMATCH_TOKEN={token} crossmatch alerts"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crossmatch_protocol::Token;

    use super::*;
    use crate::daemon::CounterpartView;

    fn counterpart(member: &str, retro: bool, created: u64, received: u64) -> CounterpartView {
        CounterpartView {
            member_id: Some(member.into()),
            contact: None,
            origin: String::new(),
            retro,
            kind: "account".into(),
            category: "c".into(),
            handling: "H1".into(),
            evaluation: "B2".into(),
            activity_per_day: None,
            algorithmic: false,
            expires_at_ms: 0,
            created_at_ms: created,
            received_at_ms: received,
            status: None,
        }
    }

    fn alert(id: u64, state: AlertState, counterparts: Vec<CounterpartView>) -> AlertView {
        AlertView {
            id,
            token: Token([id as u8; 32]),
            state,
            acknowledged: false,
            records: vec![id],
            counterparts,
            opened_at_ms: 0,
            updated_at_ms: 0,
            version: 1,
        }
    }

    #[test]
    fn pairs_count_open_matches_once_from_the_lower_member() {
        let ids: Vec<String> = ["DE", "FR", "NL"].map(String::from).to_vec();
        let alerts = vec![
            vec![
                alert(1, AlertState::Open, vec![counterpart("FR", false, 0, 5)]),
                alert(
                    2,
                    AlertState::Open,
                    vec![counterpart("FR", true, 0, 0), counterpart("NL", false, 0, 9)],
                ),
                alert(3, AlertState::Closed, vec![counterpart("NL", false, 0, 1)]),
            ],
            vec![
                alert(1, AlertState::Open, vec![counterpart("DE", false, 10, 30)]),
                alert(
                    2,
                    AlertState::Open,
                    vec![counterpart("DE", false, 10, 20), counterpart("??", false, 0, 1)],
                ),
            ],
            vec![alert(1, AlertState::Open, vec![counterpart("DE", true, 0, 0)])],
        ];
        let pairs = matches_per_pair(&alerts, &ids);
        assert_eq!(pairs, BTreeMap::from([((0, 1), 2), ((0, 2), 1)]));
        // Retro counterparts carry no latency; the closed alert's still counts.
        let all = latencies_ms(&alerts, None);
        assert_eq!(all.while_up, vec![1, 1, 5, 9, 10, 20]);
        assert!(all.missed.is_empty());
        // FR (member 1) was down from 15 to 25: the add signed at 10 and received at 30 waited
        // for it; the one received at 20 too; DE's and NL's are unaffected.
        let down = Downtime { member: 1, from_ms: 15, back_ms: 25 };
        let split = latencies_ms(&alerts, Some(&down));
        assert_eq!(split.while_up, vec![1, 1, 5, 9]);
        assert_eq!(split.missed, vec![10, 20]);
    }

    #[test]
    fn several_missed_matches_are_told_by_their_median_and_their_longest() {
        let ids: Vec<String> = ["DE", "BE"].map(String::from).to_vec();
        let late = |created, received| {
            alert(1, AlertState::Open, vec![counterpart("DE", false, created, received)])
        };
        let alerts = vec![
            vec![],
            vec![late(100, 9_100), late(200, 9_150), late(300, 12_300), late(9_500, 9_520)],
        ];
        let down = Downtime { member: 1, from_ms: 50, back_ms: 9_000 };
        let mut out = Vec::new();
        write(&mut out, &ids, &alerts, &[0, 0], Some(&down)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("over the 1 match made while both members were up: p50 20 ms, p99 20 ms"),
            "{text}"
        );
        assert!(
            text.contains("the 3 matches BE missed while it was down came by sync once it was back, p50 9000 ms and at most 12000 ms after their signature"),
            "{text}"
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u64> = (1..=200).collect();
        assert_eq!(percentile(&sorted, 50), Some(100));
        assert_eq!(percentile(&sorted, 99), Some(198));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[3, 9], 50), Some(3));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn the_summary_names_every_figure() {
        let ids: Vec<String> = ["DE", "FR"].map(String::from).to_vec();
        let alerts = vec![
            vec![alert(1, AlertState::Open, vec![counterpart("FR", false, 0, 42)])],
            vec![
                alert(1, AlertState::Open, vec![counterpart("DE", false, 100, 11_100)]),
                alert(2, AlertState::Open, vec![counterpart("DE", false, 12_000, 12_030)]),
            ],
        ];
        let mut out = Vec::new();
        write(&mut out, &ids, &alerts, &[1000, 234], None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("DE-FR     1"), "{text}");
        assert!(text.contains("3 matches made while both members were up"), "{text}");
        assert!(text.contains("p50 42 ms, p99 11000 ms"), "{text}");
        assert!(!text.contains("missed while it was down"), "{text}");
        assert!(text.contains("1234 (DE 1000, FR 234)"), "{text}");
        // FR was down while DE signed at 100: that match is told apart, and no longer weighs
        // on the p99 of the others.
        let down = Downtime { member: 1, from_ms: 50, back_ms: 11_000 };
        let mut out = Vec::new();
        write(&mut out, &ids, &alerts, &[1000, 234], Some(&down)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("2 matches made while both members were up"), "{text}");
        assert!(text.contains("p50 30 ms, p99 42 ms"), "{text}");
        assert!(
            text.contains("the 1 match FR missed while it was down came by sync once it was back, 11000 ms after its signature"),
            "{text}"
        );
    }
}
