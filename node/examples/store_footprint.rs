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
//! first): read copies, never the only one. A path without a sled log with data is refused
//! before anything is opened, and a sled database without the store's schema version before
//! the store writes to it (sled's own open may still recover its log); a running node's own
//! directory is refused by its lock, after a wait of 10 s. Every copy is read; the exit status
//! is a failure if any could not be.

use std::path::Path;
use std::process::ExitCode;

use crossmatch_node::store::{Result, Store};

fn main() -> ExitCode {
    let copies: Vec<String> = std::env::args().skip(1).collect();
    if copies.is_empty() {
        eprintln!("usage: store_footprint COPY...   (each COPY holding a store's db/)");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for copy in copies {
        if let Err(error) = read(Path::new(&copy)) {
            eprintln!("{copy}: {error}");
            failed = true;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Opens the copy, never making a store where there is none, and prints its lines.
fn read(copy: &Path) -> Result<()> {
    let store = Store::open_existing(copy)?;
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
