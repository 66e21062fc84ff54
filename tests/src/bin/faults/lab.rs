//! The network the nodes run on: one namespace per member, and a "switch" namespace holding
//! the bridges. Each member's namespace has one veth end (its address on 10.233.0.0/24); the
//! other end sits in the switch namespace and is a port of one bridge. Cutting the network
//! moves ports from bridge to bridge; nothing touches the host's own namespace beyond the brief
//! moment a veth pair is created there.
//!
//! Every name starts with [`PREFIX`], so [`sweep`] finds and removes what a killed campaign
//! left behind: the processes in its namespaces first, then the namespaces (deleting the switch
//! namespace deletes its bridges and veth ends).

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::Failure;

/// What every namespace and interface the campaign makes is named with.
pub const PREFIX: &str = "xmf-";
/// The namespace holding the bridges (and the WAN relay, when a scenario runs one).
pub const SWITCH: &str = "xmf-switch";
/// The mesh port every node listens on, on its own address.
pub const MESH_PORT: u16 = 7400;

/// The longest a short-lived tool (`ip`, `tc`, `tar`, a ceremony command…) may run: one that
/// hangs fails its call instead of stalling the campaign.
pub const TOOL_LIMIT_SECS: &str = "120";

/// `program`, run under `timeout` so that it is killed after [`TOOL_LIMIT_SECS`] (and SIGKILLed
/// 5 s later if it ignores the SIGTERM). For tools that end by themselves, never for a node.
pub fn bounded(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("timeout");
    command.args(["-k", "5", TOOL_LIMIT_SECS]).arg(program);
    command
}

/// What a failed tool said: its stderr, or that it ran out of time (`timeout`'s status 124,
/// or 137 after the SIGKILL).
pub fn complaint(output: &Output) -> String {
    match output.status.code() {
        Some(124 | 137) => format!("did not finish within {TOOL_LIMIT_SECS} s"),
        _ => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    }
}

/// The file naming the process of the campaign running on this machine.
pub const LOCK_FILE: &str = "/run/crossmatch-faults.pid";

/// One campaign at a time on a machine: the namespaces it makes and sweeps are the machine's,
/// not the process's, so a second campaign would sweep the first one's nodes away mid-run.
/// Held while it lives; the file it holds names this process, and a file naming a process no
/// longer alive (a campaign killed outright) is taken over.
#[derive(Debug)]
pub struct CampaignLock(PathBuf);

impl CampaignLock {
    /// Takes the lock, or says which campaign holds it.
    pub fn take() -> Result<Self, String> {
        let path = PathBuf::from(LOCK_FILE);
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    write!(file, "{}", std::process::id())
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    return Ok(Self(path));
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = holder
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    if let Some(pid) = alive {
                        return Err(format!(
                            "another campaign (process {pid}) is running on this machine; its \
                             namespaces would be swept away: wait for it, or stop it"
                        ));
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Err(error) => return Err(format!("cannot create {}: {error}", path.display())),
            }
        }
        Err(format!("cannot take {}: it came back while it was taken over", path.display()))
    }
}

impl Drop for CampaignLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The namespace of member `index`.
pub fn namespace(index: usize) -> String {
    format!("{PREFIX}m{index}")
}

/// The address of member `index` on the bridges.
pub fn address(index: usize) -> String {
    format!("10.233.0.{}", 10 + index)
}

/// The bridge of group `group` (0 is the one every member starts on).
fn bridge(group: usize) -> String {
    format!("{PREFIX}br{group}")
}

/// The switch-side veth end of member `index`.
fn port(index: usize) -> String {
    format!("{PREFIX}p{index}")
}

/// Runs `ip ARGS`; a failure names the command and what `ip` said.
fn ip(args: &[&str]) -> Result<(), Failure> {
    let output = bounded("ip")
        .args(args)
        .output()
        .map_err(|error| Failure::setup(format!("cannot run ip {args:?}: {error}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Failure::setup(format!("ip {}: {}", args.join(" "), complaint(&output))))
    }
}

/// `ip ARGS` inside namespace `ns`.
fn ip_in(ns: &str, args: &[&str]) -> Result<(), Failure> {
    let mut full = vec!["netns", "exec", ns, "ip"];
    full.extend_from_slice(args);
    ip(&full)
}

/// The lines `ip ARGS` prints, or none when it fails.
fn ip_lines(args: &[&str]) -> Vec<String> {
    bounded("ip")
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The campaign's namespaces that exist now.
fn our_namespaces() -> Vec<String> {
    ip_lines(&["netns", "list"])
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(PREFIX))
        .map(str::to_owned)
        .collect()
}

/// The directory every scenario's files are in.
pub fn root() -> PathBuf {
    std::env::temp_dir().join("crossmatch-faults")
}

/// The file systems mounted under [`root`] (a scenario's small tmpfs), deepest first.
fn our_mounts() -> Vec<String> {
    let root = root();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut ours: Vec<String> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|point| Path::new(point).starts_with(&root))
        .map(str::to_owned)
        .collect();
    ours.sort_by_key(|point| std::cmp::Reverse(point.len()));
    ours
}

/// Removes everything the campaign may have left: the processes running in its namespaces
/// (SIGKILL: a leftover node has no one to report to), the namespaces, veth ends stranded
/// in the host's namespace, and file systems mounted under [`root`] (lazily, once their
/// nodes are dead). Idempotent; never fails.
pub fn sweep() {
    let namespaces = our_namespaces();
    for ns in &namespaces {
        for pid in ip_lines(&["netns", "pids", ns]) {
            let _ = bounded("kill").args(["-KILL", pid.trim()]).status();
        }
    }
    for ns in &namespaces {
        let _ = ip(&["netns", "del", ns]);
    }
    for line in ip_lines(&["-o", "link", "show"]) {
        // "7: xmf-m0@xmf-p0: <...>": the name is the second field, up to an `@`.
        let Some(name) = line.split_whitespace().nth(1) else { continue };
        let name = name.trim_end_matches(':');
        let name = name.split('@').next().unwrap_or(name);
        if name.starts_with(PREFIX) {
            let _ = ip(&["link", "del", name]);
        }
    }
    for point in our_mounts() {
        let _ = bounded("umount").args(["-l", &point]).status();
    }
}

/// The network of one scenario: `members` namespaces on `groups` bridges, every member on
/// bridge 0 at first. Dropping it sweeps.
#[derive(Debug)]
pub struct Lab {
    members: usize,
}

impl Lab {
    /// Builds the namespaces, the bridges and one veth pair per member.
    pub fn new(members: usize, groups: usize) -> Result<Self, Failure> {
        sweep();
        let lab = Self { members };
        ip(&["netns", "add", SWITCH])?;
        ip_in(SWITCH, &["link", "set", "lo", "up"])?;
        for group in 0..groups {
            let bridge = bridge(group);
            ip_in(SWITCH, &["link", "add", &bridge, "type", "bridge"])?;
            ip_in(SWITCH, &["link", "set", &bridge, "up"])?;
        }
        for index in 0..members {
            lab.wire(index)?;
        }
        Ok(lab)
    }

    /// Member `index`'s namespace, its veth pair and its address, plugged into bridge 0.
    fn wire(&self, index: usize) -> Result<(), Failure> {
        let (ns, port) = (namespace(index), port(index));
        let inside = format!("{PREFIX}m{index}");
        ip(&["netns", "add", &ns])?;
        ip(&["link", "add", &inside, "type", "veth", "peer", "name", &port])?;
        ip(&["link", "set", &inside, "netns", &ns])?;
        ip(&["link", "set", &port, "netns", SWITCH])?;
        ip_in(&ns, &["addr", "add", &format!("{}/24", address(index)), "dev", &inside])?;
        ip_in(&ns, &["link", "set", &inside, "up"])?;
        ip_in(&ns, &["link", "set", "lo", "up"])?;
        ip_in(SWITCH, &["link", "set", &port, "master", &bridge(0)])?;
        ip_in(SWITCH, &["link", "set", &port, "up"])
    }

    /// Puts each member on the bridge of its group: `groups[i]` is member i's group. Members
    /// on different bridges cannot reach each other; members on one bridge can.
    pub fn arrange(&self, groups: &[usize]) -> Result<(), Failure> {
        assert_eq!(groups.len(), self.members, "one group per member");
        for (index, group) in groups.iter().enumerate() {
            ip_in(SWITCH, &["link", "set", &port(index), "master", &bridge(*group)])?;
        }
        Ok(())
    }
}

impl Lab {
    /// Gives the switch namespace `cidr` (an address and its prefix) on bridge 0: the members'
    /// gateway, or an address for a process run there (the relay) to listen on or dial from.
    pub fn add_switch_address(&self, cidr: &str) -> Result<(), Failure> {
        ip_in(SWITCH, &["addr", "add", cidr, "dev", &bridge(0)])
    }

    /// Routes `subnet` from member `index`'s namespace through `gateway`, an address on its
    /// link.
    pub fn add_route(&self, index: usize, subnet: &str, gateway: &str) -> Result<(), Failure> {
        ip_in(&namespace(index), &["route", "add", subnet, "via", gateway])
    }

    /// Gives member `index`'s namespace one more address on its veth end, for a process run
    /// there to connect from.
    pub fn add_address(&self, index: usize, address: &str) -> Result<(), Failure> {
        let (ns, cidr) = (namespace(index), format!("{address}/24"));
        ip_in(&ns, &["addr", "add", &cidr, "dev", &ns])
    }

    /// Caps member `index`'s link at `rate` (tc's notation, `1mbit`) both ways: a token
    /// bucket on its veth end (what it sends) and on the switch's end (what it receives).
    pub fn cap_rate(&self, index: usize, rate: &str) -> Result<(), Failure> {
        let tbf = ["root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"];
        tc(&namespace(index), &[&["qdisc", "add", "dev", &namespace(index)][..], &tbf].concat())?;
        tc(SWITCH, &[&["qdisc", "add", "dev", &port(index)][..], &tbf].concat())
    }
}

/// `tc ARGS` inside namespace `ns`; a failure names the command and what `tc` said.
fn tc(ns: &str, args: &[&str]) -> Result<(), Failure> {
    let output = bounded("ip")
        .args(["netns", "exec", ns, "tc"])
        .args(args)
        .output()
        .map_err(|error| Failure::setup(format!("cannot run tc {args:?}: {error}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Failure::setup(format!("tc {}: {}", args.join(" "), complaint(&output))))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        sweep();
    }
}
