//! The demo's closing figures: the matches between each pair of members, the latency from an
//! add's signature to the alert it raised elsewhere (p50 and p99), and the payload bytes each
//! member's mesh sent; then how to reach each member's API.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;

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
/// it: every counterpart not found by a local add (those were already held).
pub fn latencies_ms(alerts: &[Vec<AlertView>]) -> Vec<u64> {
    let mut latencies: Vec<u64> = alerts
        .iter()
        .flatten()
        .flat_map(|alert| &alert.counterparts)
        .filter(|counterpart| !counterpart.retro)
        .map(|counterpart| counterpart.received_at_ms.saturating_sub(counterpart.created_at_ms))
        .collect();
    latencies.sort_unstable();
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

/// Writes the summary: `alerts[i]` and `bytes_sent[i]` are member `i`'s, `ids` their ids.
pub fn write(
    out: &mut impl Write,
    ids: &[String],
    alerts: &[Vec<AlertView>],
    bytes_sent: &[u64],
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
    let latencies = latencies_ms(alerts);
    match (percentile(&latencies, 50), percentile(&latencies, 99)) {
        (Some(p50), Some(p99)) => writeln!(
            out,
            "   latency from an add's signature to the alert at another member: p50 {p50} ms, p99 {p99} ms ({} matches; the outage's wait included)",
            latencies.len()
        )?,
        _ => writeln!(out, "   latency: no match arrived from another member")?,
    }
    let total: u64 = bytes_sent.iter().sum();
    let each: Vec<String> =
        ids.iter().zip(bytes_sent).map(|(id, bytes)| format!("{id} {bytes}")).collect();
    writeln!(
        out,
        "   payload bytes sent by the mesh (batches published and sync answers, before Noise and Yamux): {total} ({})",
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
        assert_eq!(latencies_ms(&alerts), vec![1, 1, 5, 9, 10, 20]);
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
        let alerts =
            vec![vec![alert(1, AlertState::Open, vec![counterpart("FR", false, 0, 42)])], vec![]];
        let mut out = Vec::new();
        write(&mut out, &ids, &alerts, &[1000, 234]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("DE-FR     1"), "{text}");
        assert!(text.contains("p50 42 ms, p99 42 ms"), "{text}");
        assert!(text.contains("1234 (DE 1000, FR 234)"), "{text}");
    }
}
