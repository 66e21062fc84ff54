//! The relay's rules, as plain data: which pairs a rule covers (`PairPattern`), the delay table
//! (most specific rule wins), and the parsing of the delay table file. No I/O, no clock.

use std::fmt;
use std::net::IpAddr;

/// Longest one-way delay or jitter a rule may set: one minute, far beyond any WAN.
pub const MAX_DELAY_MS: u64 = 60_000;

/// Most rules the delay table holds (file and control commands together).
pub const MAX_DELAY_RULES: usize = 4096;

/// Longest route name: names are short labels (a member id, a capital).
pub const MAX_ROUTE_NAME: usize = 64;

/// One concrete pair: the dialer's source address and the route it dialed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pair {
    pub source: IpAddr,
    pub route: String,
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.source, self.route)
    }
}

/// A pattern over pairs: each side is one value or `*` (any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairPattern {
    pub source: Option<IpAddr>,
    pub route: Option<String>,
}

impl PairPattern {
    /// `* *`: every pair.
    pub const ANY: Self = Self { source: None, route: None };

    /// Parses `SRC_IP ROUTE`, either side `*`; `is_route` says whether a route name exists.
    pub fn parse(
        source: &str,
        route: &str,
        is_route: impl Fn(&str) -> bool,
    ) -> Result<Self, String> {
        let source = match source {
            "*" => None,
            text => Some(parse_ip(text)?),
        };
        let route = match route {
            "*" => None,
            name if is_route(name) => Some(name.to_owned()),
            name if valid_route_name(name) => return Err(format!("no route named {name}")),
            _ => return Err("a route name is 1 to 64 of [A-Za-z0-9._-]".into()),
        };
        Ok(Self { source, route })
    }

    /// Whether the pattern covers the pair.
    pub fn matches(&self, pair: &Pair) -> bool {
        self.source.is_none_or(|source| source == pair.source)
            && self.route.as_ref().is_none_or(|route| *route == pair.route)
    }

    /// Whether every pair `other` covers is covered by `self` (used by `heal`).
    pub fn covers(&self, other: &Self) -> bool {
        let source = self.source.is_none() || self.source == other.source;
        let route = self.route.is_none() || self.route == other.route;
        source && route
    }

    /// 3 for an exact pair, 2 for a source with any route, 1 for a route from any source, 0 for
    /// `* *`: the more specific rule wins.
    fn specificity(&self) -> u8 {
        u8::from(self.source.is_some()) * 2 + u8::from(self.route.is_some())
    }
}

impl fmt::Display for PairPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{source} ")?,
            None => f.write_str("* ")?,
        }
        f.write_str(self.route.as_deref().unwrap_or("*"))
    }
}

/// Parses an IP address, IPv4-mapped IPv6 addresses taken as IPv4 (as accepted sockets see them).
pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = text.parse().map_err(|_| "a source is an IP address or *".to_owned())?;
    Ok(ip.to_canonical())
}

/// Whether a name can name a route: 1 to 64 of ASCII letters, digits, `.`, `_` and `-`.
pub fn valid_route_name(name: &str) -> bool {
    (1..=MAX_ROUTE_NAME).contains(&name.len())
        && name != "*"
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A one-way delay, in milliseconds, with the jitter added on top of it (uniform in
/// `0..=jitter_ms`, so `ms` is a lower bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delay {
    pub ms: u64,
    pub jitter_ms: u64,
}

impl Delay {
    /// Parses `MS [JITTER]`, each at most `MAX_DELAY_MS`.
    pub fn parse(ms: &str, jitter: Option<&str>) -> Result<Self, String> {
        let ms = parse_ms(ms)?;
        let jitter_ms = jitter.map(parse_ms).transpose()?.unwrap_or(0);
        Ok(Self { ms, jitter_ms })
    }
}

fn parse_ms(text: &str) -> Result<u64, String> {
    let value: u64 =
        text.parse().map_err(|_| "a delay is a whole number of milliseconds".to_owned())?;
    if value > MAX_DELAY_MS {
        return Err(format!("a delay is at most {MAX_DELAY_MS} ms"));
    }
    Ok(value)
}

/// The delay rules: a pair takes the delay of the most specific rule that covers it (exact
/// pair, then source, then route, then `* *`), or no delay.
#[derive(Debug, Default)]
pub struct DelayTable {
    rules: Vec<(PairPattern, Delay)>,
}

impl DelayTable {
    /// Sets the delay of exactly this pattern, replacing an earlier rule for it.
    pub fn set(&mut self, pattern: PairPattern, delay: Delay) -> Result<(), String> {
        if let Some(rule) = self.rules.iter_mut().find(|(p, _)| *p == pattern) {
            rule.1 = delay;
            return Ok(());
        }
        if self.rules.len() >= MAX_DELAY_RULES {
            return Err(format!("the delay table is full ({MAX_DELAY_RULES} rules)"));
        }
        self.rules.push((pattern, delay));
        Ok(())
    }

    /// The delay of a pair.
    pub fn lookup(&self, pair: &Pair) -> Delay {
        self.rules
            .iter()
            .filter(|(pattern, _)| pattern.matches(pair))
            .max_by_key(|(pattern, _)| pattern.specificity())
            .map(|(_, delay)| *delay)
            .unwrap_or_default()
    }

    /// Parses a delay table file: one rule a line, `SRC_IP ROUTE MS [JITTER]` (either side
    /// `*`) or `default MS [JITTER]` (the same as `* * MS [JITTER]`); `#` starts a comment.
    pub fn parse(text: &str, is_route: impl Fn(&str) -> bool) -> Result<Self, String> {
        let mut table = Self::default();
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default();
            let words: Vec<&str> = line.split_whitespace().collect();
            let rule = match words.as_slice() {
                [] => continue,
                ["default", ms] => Delay::parse(ms, None).map(|delay| (PairPattern::ANY, delay)),
                ["default", ms, jitter] => {
                    Delay::parse(ms, Some(jitter)).map(|delay| (PairPattern::ANY, delay))
                }
                ["default", ..] => Err("expected `default MS [JITTER]`".into()),
                [source, route, ms, rest @ ..] if rest.len() <= 1 => {
                    PairPattern::parse(source, route, &is_route)
                        .and_then(|pattern| Ok((pattern, Delay::parse(ms, rest.first().copied())?)))
                }
                _ => Err("expected `SRC_IP ROUTE MS [JITTER]` or `default MS [JITTER]`".into()),
            };
            let (pattern, delay) = rule.map_err(|error| format!("line {}: {error}", index + 1))?;
            table.set(pattern, delay).map_err(|error| format!("line {}: {error}", index + 1))?;
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(source: &str, route: &str) -> Pair {
        Pair { source: source.parse().unwrap(), route: route.into() }
    }

    fn is_route(name: &str) -> bool {
        ["de", "fr"].contains(&name)
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let text = "default 1\n* fr 2\n10.0.0.1 * 3 1 # a comment\n10.0.0.1 fr 4\n";
        let table = DelayTable::parse(text, is_route).unwrap();
        let ms = |source, route| table.lookup(&pair(source, route)).ms;
        assert_eq!((ms("10.0.0.1", "fr"), ms("10.0.0.1", "de")), (4, 3));
        assert_eq!((ms("10.0.0.2", "fr"), ms("10.0.0.2", "de")), (2, 1));
        assert_eq!(table.lookup(&pair("10.0.0.1", "de")).jitter_ms, 1);
        assert_eq!(DelayTable::default().lookup(&pair("10.0.0.1", "de")), Delay::default());
    }

    #[test]
    fn bad_lines_are_refused_by_line_number() {
        for (text, expected) in [
            ("10.0.0.1 fr\n", "line 1: expected"),
            ("\n10.0.0.x fr 3\n", "line 2: a source is an IP address"),
            ("10.0.0.1 it 3\n", "line 1: no route named it"),
            ("10.0.0.1 fr 60001\n", "line 1: a delay is at most"),
            ("10.0.0.1 fr -1\n", "line 1: a delay is a whole number"),
            ("default 1 2 3\n", "line 1: expected"),
            ("* f/r 3\n", "line 1: a route name is"),
        ] {
            let error = DelayTable::parse(text, is_route).unwrap_err();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn covering_is_per_side() {
        let any = PairPattern::ANY;
        let one = PairPattern::parse("10.0.0.1", "fr", is_route).unwrap();
        let route = PairPattern::parse("*", "fr", is_route).unwrap();
        assert!(any.covers(&one) && route.covers(&one) && !one.covers(&route));
        assert!(one.matches(&pair("10.0.0.1", "fr")) && !one.matches(&pair("10.0.0.1", "de")));
        assert_eq!(parse_ip("::ffff:10.0.0.1").unwrap(), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
