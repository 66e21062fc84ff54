//! Routes from the command line (`--route [NAME=]LISTEN=TARGET`) and from a routes file (one
//! `NAME LISTEN TARGET` a line, `#` comments), and the `--dial-from` source mappings.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::rules::valid_route_name;
use crate::state::Route;

/// Most routes one relay serves.
pub const MAX_ROUTES: usize = 1024;

/// Parses `[NAME=]LISTEN=TARGET`; without a name, the route is named by its listen address
/// (`:` written `_`).
pub fn parse_spec(spec: &str) -> Result<Route, String> {
    let parts: Vec<&str> = spec.split('=').collect();
    let (name, listen, target) = match parts.as_slice() {
        [listen, target] => (None, *listen, *target),
        [name, listen, target] => (Some(*name), *listen, *target),
        _ => return Err(format!("route {spec:?}: expected [NAME=]LISTEN=TARGET")),
    };
    route(name, listen, target).map_err(|error| format!("route {spec:?}: {error}"))
}

/// Parses a routes file.
pub fn parse_file(text: &str) -> Result<Vec<Route>, String> {
    let mut routes = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let words: Vec<&str> =
            line.split('#').next().unwrap_or_default().split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            [name, listen, target] => routes.push(
                route(Some(name), listen, target)
                    .map_err(|error| format!("line {}: {error}", index + 1))?,
            ),
            _ => return Err(format!("line {}: expected NAME LISTEN TARGET", index + 1)),
        }
    }
    Ok(routes)
}

fn route(name: Option<&str>, listen: &str, target: &str) -> Result<Route, String> {
    let listen = listen.parse().map_err(|_| format!("listen address {listen:?} is not IP:PORT"))?;
    let target = target.parse().map_err(|_| format!("target {target:?} is not IP:PORT"))?;
    let name = name.map_or_else(|| format!("{listen}"), str::to_owned);
    // An unnamed route is named by its listen address, `127.0.0.1:7001` as `127.0.0.1_7001`.
    let plain: String = name
        .chars()
        .filter(|c| !matches!(c, '[' | ']'))
        .map(|c| if c == ':' { '_' } else { c })
        .collect();
    if !valid_route_name(&plain) {
        return Err(format!("name {name:?} is not 1 to 64 of [A-Za-z0-9._-]"));
    }
    Ok(Route { name: plain, listen, target })
}

/// Most `--dial-from` mappings.
pub const MAX_DIAL_FROM: usize = 4096;

/// Parses the `--dial-from SRC_IP=LOCAL_IP` mappings: each source once, both of one family.
pub fn parse_dial_from(specs: &[String]) -> Result<HashMap<IpAddr, IpAddr>, String> {
    if specs.len() > MAX_DIAL_FROM {
        return Err(format!("at most {MAX_DIAL_FROM} --dial-from mappings"));
    }
    let mut map = HashMap::new();
    for spec in specs {
        let parsed = spec.split_once('=').and_then(|(source, local)| {
            Some((source.parse::<IpAddr>().ok()?.to_canonical(), local.parse::<IpAddr>().ok()?))
        });
        let Some((source, local)) = parsed else {
            return Err(format!("--dial-from {spec:?}: expected SRC_IP=LOCAL_IP"));
        };
        if source.is_ipv4() != local.is_ipv4() {
            return Err(format!("--dial-from {spec:?}: both addresses of one family"));
        }
        if map.insert(source, local).is_some() {
            return Err(format!("--dial-from: {source} is mapped twice"));
        }
    }
    Ok(map)
}

/// Checks the whole set: at least one route, at most `MAX_ROUTES`, names unique.
pub fn check(routes: &[Route]) -> Result<(), String> {
    if routes.is_empty() || routes.len() > MAX_ROUTES {
        return Err(format!("give 1 to {MAX_ROUTES} routes"));
    }
    let mut names = HashSet::new();
    for route in routes {
        if !names.insert(route.name.as_str()) {
            return Err(format!("two routes are named {}", route.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_files_parse() {
        let named = parse_spec("fr=127.0.0.1:7001=10.0.0.2:4001").unwrap();
        assert_eq!(
            (named.name.as_str(), named.listen.port(), named.target.port()),
            ("fr", 7001, 4001)
        );
        assert_eq!(parse_spec("127.0.0.1:7001=10.0.0.2:4001").unwrap().name, "127.0.0.1_7001");
        let routes = parse_file(
            "# members\nde 127.0.0.1:7000 10.0.0.1:4001\n\nfr 127.0.0.1:7001 10.0.0.2:4001 # FR\n",
        )
        .unwrap();
        assert_eq!(routes.len(), 2);
        check(&routes).unwrap();
    }

    #[test]
    fn bad_routes_are_refused() {
        assert!(parse_spec("fr=127.0.0.1:7001").unwrap_err().contains("not IP:PORT"));
        assert!(parse_spec("a=b=c=d").unwrap_err().contains("expected"));
        assert!(parse_spec("f/r=127.0.0.1:1=127.0.0.1:2").unwrap_err().contains("name"));
        assert!(parse_file("de 127.0.0.1:7000\n").unwrap_err().starts_with("line 1"));
        let twice = [
            parse_spec("a=127.0.0.1:1=127.0.0.1:2").unwrap(),
            parse_spec("a=127.0.0.1:3=127.0.0.1:2").unwrap(),
        ];
        assert!(check(&twice).unwrap_err().contains("two routes"));
        assert!(check(&[]).is_err());
    }

    #[test]
    fn dial_from_maps_each_source_once() {
        let specs = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let map = parse_dial_from(&specs(&["10.0.0.1=10.9.0.1", "10.0.0.2=10.9.0.2"])).unwrap();
        assert_eq!(
            map[&"10.0.0.2".parse::<IpAddr>().unwrap()],
            "10.9.0.2".parse::<IpAddr>().unwrap()
        );
        for (bad, expected) in [
            (&["10.0.0.1"][..], "expected SRC_IP=LOCAL_IP"),
            (&["10.0.0.1=::1"][..], "one family"),
            (&["10.0.0.1=10.9.0.1", "10.0.0.1=10.9.0.2"][..], "mapped twice"),
        ] {
            let error = parse_dial_from(&specs(bad)).unwrap_err();
            assert!(error.contains(expected), "{bad:?}: {error}");
        }
    }
}
