//! Tidy checks of the project's own rules: every source file says what it is for and is named in
//! ARCHITECTURE.md's code map; sled, libp2p and axum each stay behind their one module; the API
//! reaches the engine and the store only through the daemon's façade, and the engine knows
//! neither the daemon, the API, the mesh nor tokio; every store prefix is in the layout table;
//! `protocol` does no I/O; the docs stand alone; no test is ignored; files stay short or say
//! why; unbounded tokio channels are banned; and the example configurations parse.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && name != "target" && !name.starts_with('.') {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for crate_dir in ["protocol", "node", "tests"] {
        rust_files(&root().join(crate_dir), &mut files);
    }
    files
}

#[test]
fn every_source_file_starts_with_a_doc_line() {
    for file in all_rust_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("//!"), "{} must start with a //! line", file.display());
    }
}

#[test]
fn no_mod_rs_files() {
    for file in all_rust_files() {
        assert!(!file.ends_with("mod.rs"), "{}: use foo.rs + foo/", file.display());
    }
}

#[test]
fn sled_stays_in_the_store_libp2p_in_the_mesh_and_axum_in_the_api() {
    for file in all_rust_files() {
        let relative = file.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        // Built at run time so this file does not match itself.
        let (sled, libp2p) = (format!("{}::", "sled"), format!("{}::", "libp2p"));
        let axum = format!("{}::", "axum");
        if !is_api_module(&relative) {
            assert!(!text.contains(&axum), "{relative} uses axum outside the API module");
        }
        if !relative.starts_with("node/src/store") && !relative.starts_with("node/benches/") {
            assert!(!text.contains(&sled), "{relative} uses sled outside the store module");
        }
        if !relative.starts_with("node/src/mesh") && relative != "node/tests/integration/mesh.rs" {
            assert!(!text.contains(&libp2p), "{relative} uses libp2p outside the mesh module");
        }
    }
}

/// `node/src/api.rs` and every file under `node/src/api/`.
fn is_api_module(relative: &str) -> bool {
    relative == "node/src/api.rs" || relative.starts_with("node/src/api/")
}

#[test]
fn the_api_imports_neither_the_engine_nor_the_store() {
    let mut checked = 0;
    for file in all_rust_files() {
        let relative = file.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
        if !relative.starts_with("node/src/api") {
            continue;
        }
        checked += 1;
        let text = std::fs::read_to_string(&file).unwrap();
        assert_reaches_none(&relative, &text, &["engine", "store"]);
    }
    assert!(checked > 1, "the API module was not found");
}

/// The path segments named by the `use` declarations of `text`, and by any `crate::` path.
fn crate_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let starts_line = at == 0 || rest[..at].ends_with(['\n', ' ', '(']);
        let statement = rest[at..].split(';').next().unwrap_or_default();
        if starts_line {
            paths.push(statement.to_owned());
        }
        rest = &rest[at + 4..];
    }
    for (at, _) in text.match_indices("crate::").chain(text.match_indices("super::")) {
        let path: String = text[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(path);
    }
    paths
}

/// Fails if `text` reaches any of the `banned` modules of the crate (`crate::x`, `use
/// crate::{x, ..}`, `super::super::x`) or, for `tokio`, the crate of that name.
fn assert_reaches_none(name: &str, text: &str, banned: &[&str]) {
    for path in crate_paths(text) {
        let segments: Vec<&str> = path
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|segment| !segment.is_empty())
            .collect();
        let local = segments.contains(&"crate") || segments.contains(&"super");
        for module in banned {
            let named = segments.contains(module);
            let reached = if *module == "tokio" { named } else { named && local };
            assert!(!reached, "{name} reaches {module} through `{}`", path.trim());
        }
    }
}

#[test]
fn protocol_does_no_io_and_reads_no_clock() {
    let mut files = Vec::new();
    rust_files(&root().join("protocol/src"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for banned in [
            "std::fs",
            "std::net",
            "std::time::SystemTime",
            "Instant::now",
            "getrandom",
            "std::env",
        ] {
            assert!(!text.contains(banned), "{} uses {banned}", file.display());
        }
    }
    let manifest = std::fs::read_to_string(root().join("protocol/Cargo.toml")).unwrap();
    for banned in ["tokio", "sled", "libp2p", "getrandom", "rand"] {
        let dependencies = manifest.split("[dev-dependencies]").next().unwrap();
        assert!(!dependencies.contains(&format!("\n{banned}")), "protocol depends on {banned}");
    }
}

#[test]
fn example_configurations_parse() {
    let roster =
        crossmatch_node::roster_file::read(&root().join("config/roster.example.toml")).unwrap();
    assert_eq!(roster.roster.body.members.len(), 2);
    roster.roster.body.validate().unwrap();
    // A valid founding roster (its expiry is not a rule of validity).
    crossmatch_protocol::verify_founding(&roster.roster).unwrap();
    let text = std::fs::read_to_string(root().join("config/node.example.toml")).unwrap();
    let config: crossmatch_node::config::ConfigFile = toml::from_str(&text).unwrap();
    assert_eq!(config.member_id, "DE");
    assert_eq!(config.announce_addresses, None, "the example's own record is commented out");
    assert_eq!(config.store_cache_mib, 256, "the example names the default store cache");
    // Uncommented, the example's record settings parse too.
    let uncommented = text
        .replace("# announce_addresses = ", "announce_addresses = ")
        .replace("# contact = ", "contact = ");
    let config: crossmatch_node::config::ConfigFile = toml::from_str(&uncommented).unwrap();
    assert_eq!(config.announce_addresses.map(|a| a.len()), Some(1));
    assert!(config.contact.is_some());
    let api = config.api.unwrap();
    assert!(api.listen.ip().is_loopback());
    // The service's config: state in the unit's StateDirectory, files by credential name.
    let text = std::fs::read_to_string(root().join("config/node.service.example.toml")).unwrap();
    let service: crossmatch_node::config::ConfigFile = toml::from_str(&text).unwrap();
    assert_eq!(service.data_dir, Path::new("/var/lib/crossmatch"));
    assert_eq!(service.log_format, crossmatch_node::logging::LogFormat::Json);
    assert!(service.key_file.is_relative() && service.api.unwrap().tokens_file.is_relative());
    let text = std::fs::read_to_string(root().join("config/api-tokens.example.toml")).unwrap();
    let tokens: crossmatch_node::config::TokensFile = toml::from_str(&text).unwrap();
    assert_eq!(tokens.tokens.len(), 2);
}

/// Files under `dir`, relative to it, with `/` separators.
fn relative_rust_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut relative: Vec<String> = files
        .iter()
        .map(|file| file.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/"))
        .collect();
    relative.sort();
    relative
}

#[test]
fn every_store_prefix_is_in_the_layout_table() {
    let text = std::fs::read_to_string(root().join("node/src/store/keys.rs")).unwrap();
    let table: Vec<&str> = text.lines().filter(|line| line.starts_with("//! | `")).collect();
    let mut prefixes = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // Any visibility: `pub const`, `pub(crate) const`, `const`.
        if line.contains("const ")
            && let Some((_, value)) = line.split_once(": u8 = b'")
        {
            prefixes.push(value.chars().next().unwrap());
        }
    }
    assert!(prefixes.len() >= 16, "prefix constants found: {prefixes:?}");
    for prefix in &prefixes {
        let row = format!("//! | `{prefix}` |");
        assert!(table.iter().any(|line| line.starts_with(&row)), "prefix {prefix:?} has no row");
    }
    assert_eq!(table.len(), prefixes.len(), "every row of the table is a prefix constant");
    let mut unique = prefixes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), prefixes.len(), "a prefix byte is used twice: {prefixes:?}");
}

#[test]
fn every_source_file_is_named_in_the_code_map() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for crate_dir in ["protocol", "node"] {
        // The crate's own section of the map, from its heading to the next one.
        let heading = format!("### `{crate_dir}/`");
        let start = map.find(&heading).unwrap_or_else(|| panic!("no section {heading}"));
        let section = &map[start + heading.len()..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        for file in relative_rust_files(&root().join(crate_dir).join("src")) {
            assert!(
                section.contains(&format!("`{file}`")),
                "{crate_dir}/src/{file} is not named in its section of ARCHITECTURE.md's code map"
            );
        }
    }
}

#[test]
fn every_file_the_code_map_names_exists() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    // Each section resolves names against its own crate; the others against the repository.
    let crate_bases = |heading: &str| -> Vec<String> {
        let crate_dir = heading.split('`').nth(1).unwrap_or_default();
        match crate_dir {
            "protocol/" | "node/" | "tests/" => ["src/", "", "tests/"]
                .iter()
                .map(|base| format!("{crate_dir}{base}"))
                .chain(std::iter::once(String::new()))
                .collect(),
            "scripts/" => vec!["scripts/".into(), String::new()],
            _ if heading.starts_with("### ") => vec![String::new()],
            // The bird's-eye view and cross-cutting concerns speak of every crate.
            _ => ["", "protocol/src/", "node/src/", "protocol/", "node/", "tests/"]
                .iter()
                .map(|base| (*base).to_owned())
                .collect(),
        }
    };
    // Sections start at `## ` and `### ` headings (`#### ` ones stay in their section).
    let mut sections: Vec<String> = vec![String::new()];
    for line in map.lines() {
        if line.starts_with("## ") || line.starts_with("### ") {
            sections.push(String::new());
        }
        let current = sections.last_mut().unwrap();
        current.push_str(line);
        current.push('\n');
    }
    for section in &sections {
        let heading = section.lines().next().unwrap_or_default();
        let bases = crate_bases(heading);
        for name in section.split('`').skip(1).step_by(2) {
            let is_path = (name.ends_with(".rs") || name.ends_with(".md") || name.ends_with(".py"))
                && !name.contains(' ');
            if is_path {
                let found = bases.iter().any(|base| root().join(format!("{base}{name}")).exists());
                assert!(found, "ARCHITECTURE.md ({heading}) names `{name}`, which does not exist");
            }
        }
    }
}

#[test]
fn docs_stand_alone() {
    let mut texts = vec![root().join("ARCHITECTURE.md"), root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        texts.push(entry.unwrap().path());
    }
    for crate_dir in ["protocol", "node", "tests"] {
        rust_files(&root().join(crate_dir), &mut texts);
    }
    // Built at run time so this file does not match itself.
    let outside = format!("..{}shared", '/');
    let brief = format!("DESIGN {}", '§');
    for path in texts.iter().filter(|path| path.is_file()) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert!(!text.contains(&outside), "{} cites a file outside the repository", path.display());
        for (at, _) in text.match_indices(&brief) {
            let cited = text[..at].ends_with("docs/");
            assert!(cited, "{} cites the design without its path", path.display());
        }
    }
}

#[test]
fn the_engine_imports_none_of_daemon_api_mesh_or_tokio() {
    let mut files = vec![root().join("node/src/engine.rs")];
    rust_files(&root().join("node/src/engine"), &mut files);
    assert!(files.len() > 1);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.display().to_string();
        assert_reaches_none(&name, &text, &["daemon", "api", "mesh", "tokio"]);
        assert!(!text.contains("tokio"), "{name} names tokio");
    }
}

#[test]
fn no_ignored_tests_and_no_should_panic_without_expected() {
    // Built at run time so this file does not match itself.
    let (ignore, should_panic) = (format!("#[{}", "ignore"), format!("#[{}", "should_panic"));
    let conditional = format!("#[{}(", "cfg_attr");
    for file in all_rust_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&ignore), "{} ignores a test", file.display());
        for (at, _) in text.match_indices(&conditional) {
            let attribute = text[at..].split(']').next().unwrap_or_default();
            assert!(!attribute.contains("ignore"), "{} ignores a test", file.display());
        }
        for (at, _) in text.match_indices(&should_panic) {
            let attribute = text[at..].split(']').next().unwrap_or_default();
            assert!(
                attribute.contains("expected"),
                "{}: should_panic needs expected =",
                file.display()
            );
        }
    }
}

/// Longest `node/src` file before a reviewer should ask whether it holds more than one job.
const MAX_SOURCE_LINES: usize = 800;

#[test]
fn node_source_files_stay_short_or_say_why() {
    for file in relative_rust_files(&root().join("node/src")) {
        let text = std::fs::read_to_string(root().join("node/src").join(&file)).unwrap();
        let lines = text.lines().count();
        // A file may run longer if a comment says why: `// Long file: <reason>`.
        let explained = text.lines().any(|line| line.trim_start().starts_with("// Long file:"));
        assert!(
            lines <= MAX_SOURCE_LINES || explained,
            "node/src/{file} has {lines} lines; split it by job or say why in a `// Long file:` comment"
        );
    }
}

#[test]
fn clippy_bans_unbounded_tokio_channels() {
    let text = std::fs::read_to_string(root().join("clippy.toml")).unwrap();
    let config: toml::Table = toml::from_str(&text).unwrap();
    let paths = |list: &str| -> Vec<String> {
        let entries = config.get(list).and_then(|value| value.as_array()).cloned();
        entries
            .unwrap_or_default()
            .iter()
            .filter_map(|entry| entry.get("path").and_then(|path| path.as_str()).map(str::to_owned))
            .collect()
    };
    assert!(paths("disallowed-methods").contains(&"tokio::sync::mpsc::unbounded_channel".into()));
    for banned in ["tokio::sync::mpsc::UnboundedSender", "tokio::sync::mpsc::UnboundedReceiver"] {
        assert!(paths("disallowed-types").contains(&banned.to_owned()), "{banned} allowed");
    }
}
