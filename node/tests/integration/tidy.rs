//! Tidy checks of the project's own rules: every source file says what it is for, sled, libp2p
//! and axum each stay behind their one module, `protocol` does no I/O, and the example
//! configurations parse.

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
        if relative != "node/src/api.rs" {
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
        crossmatch_node::config::load_roster(&root().join("config/roster.example.toml")).unwrap();
    assert_eq!(roster.members.len(), 2);
    let text = std::fs::read_to_string(root().join("config/node.example.toml")).unwrap();
    let config: crossmatch_node::config::ConfigFile = toml::from_str(&text).unwrap();
    assert_eq!(config.member_id, "DE");
    let api = config.api.unwrap();
    assert!(api.listen.ip().is_loopback());
    let text = std::fs::read_to_string(root().join("config/api-tokens.example.toml")).unwrap();
    let tokens: crossmatch_node::config::TokensFile = toml::from_str(&text).unwrap();
    assert_eq!(tokens.tokens.len(), 2);
}
