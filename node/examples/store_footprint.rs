//! Reads copies of stores and prints, for each, the live keys and bytes per tree and key prefix
//! (the layout table's first byte), their sum, and sled's files against the pages it counts
//! live: where a member's disk goes, told apart from sled's space amplification. The soak's
//! footprints in docs/BENCHMARKS.md are read with it.
//!
//! ```text
//! kill -STOP PID; cp -a MEMBER/data/db COPY/db; kill -CONT PID    # a crash image of the store
//! cargo run --release -p crossmatch-node --example store_footprint -- COPY...
//! ```
//!
//! Opening a store recovers it and may write to it (a store of an older schema is migrated
//! first): read copies, never the only one. A running node's own directory is refused by its
//! lock, after a wait of 10 s.

use std::path::Path;
use std::process::ExitCode;

use crossmatch_node::store::{Result, Store};

fn main() -> ExitCode {
    let copies: Vec<String> = std::env::args().skip(1).collect();
    if copies.is_empty() {
        eprintln!("usage: store_footprint COPY...   (each COPY holding a store's db/)");
        return ExitCode::from(2);
    }
    for copy in copies {
        if let Err(error) = print_footprint(Path::new(&copy)) {
            eprintln!("{copy}: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// One line per tree and prefix, then the sums and sled's own count.
fn print_footprint(copy: &Path) -> std::result::Result<(), String> {
    // `Store::open` would make a new, empty store where there is none.
    if !copy.join("db").join("conf").is_file() {
        return Err("no store here (COPY must hold the copied db/)".to_owned());
    }
    read(copy).map_err(|error| error.to_string())
}

/// Opens the copy and prints its lines.
fn read(copy: &Path) -> Result<()> {
    let store = Store::open(copy)?;
    let name = copy.display();
    let mut live = 0;
    for ((tree, prefix), counts) in store.footprint()? {
        let prefix = prefix.escape_ascii();
        println!("{name} {tree} {prefix} keys={} bytes={}", counts.keys, counts.bytes());
        live += counts.bytes();
    }
    let space = store.sled_space()?;
    let ratio = |bytes: u64| space.file_bytes as f64 / bytes.max(1) as f64;
    println!(
        "{name} live={live} sled_pages={} sled_files={} files/pages={:.2} files/live={:.2}",
        space.page_bytes,
        space.file_bytes,
        ratio(space.page_bytes),
        ratio(live),
    );
    Ok(())
}
