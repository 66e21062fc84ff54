//! Replays the cargo-fuzz corpora of the node's targets (`node/fuzz`) on stable Rust, through
//! the very bodies the targets run (`test_support::fuzz`), so every input the fuzzer ever kept
//! (crashes fixed included) stays a regression test. The seeds, made by the real encoders,
//! must be accepted; with `CROSSMATCH_WRITE_FUZZ_SEEDS=1` they are also written into the
//! corpora (docs/FUZZING.md).

use std::path::{Path, PathBuf};

use crossmatch_node::test_support::fuzz::{TARGETS, run, seeds};

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");

/// Each target's corpus floor: at least `inputs` files, of which at least `accepted` are
/// accepted (the valid seeds among them).
const FLOORS: [(&str, usize, usize); 7] = [
    ("sync", 17, 17),
    ("roster_file", 2, 2),
    ("api_body", 12, 10),
    ("observations", 3, 3),
    ("import_csv", 3, 2),
    ("import_jsonl", 2, 2),
    ("import_stix", 3, 2),
];

fn corpus(target: &str) -> PathBuf {
    Path::new(FUZZ_DIR).join("corpus").join(target)
}

/// Runs the target on every file of its corpus and checks its floor.
fn assert_replays(target: &str) {
    let (_, floor, accepted_floor) =
        FLOORS.into_iter().find(|(name, ..)| *name == target).expect("a floor per target");
    let dir = corpus(target);
    let files =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut inputs = 0;
    let mut accepted = 0;
    for file in files {
        let path = file.expect("a corpus entry").path();
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        inputs += 1;
        accepted += usize::from(run(target, &bytes));
    }
    assert!(inputs >= floor, "the {target} corpus has {inputs} inputs, fewer than {floor}");
    assert!(
        accepted >= accepted_floor,
        "only {accepted} of the {target} corpus's {inputs} inputs are accepted (at least \
         {accepted_floor} valid seeds are in it)"
    );
}

#[test]
fn sync_corpus_replays() {
    assert_replays("sync");
}

#[test]
fn roster_file_corpus_replays() {
    assert_replays("roster_file");
}

#[test]
fn api_body_corpus_replays() {
    assert_replays("api_body");
}

#[test]
fn observations_corpus_replays() {
    assert_replays("observations");
}

#[test]
fn import_csv_corpus_replays() {
    assert_replays("import_csv");
}

#[test]
fn import_jsonl_corpus_replays() {
    assert_replays("import_jsonl");
}

#[test]
fn import_stix_corpus_replays() {
    assert_replays("import_stix");
}

/// Every `fuzz_targets/*.rs` is a target of `test_support::fuzz` with a floor here and a
/// corpus.
#[test]
fn every_fuzz_target_has_a_corpus_replayed_here() {
    let dir = Path::new(FUZZ_DIR).join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the fuzz targets are listed")
        .map(|file| file.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| path.file_stem().expect("a name").to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut known: Vec<&str> = TARGETS.to_vec();
    known.sort();
    assert_eq!(names, known, "the fuzz targets and test_support::fuzz::TARGETS differ");
    let mut floored: Vec<&str> = FLOORS.iter().map(|(name, ..)| *name).collect();
    floored.sort();
    assert_eq!(floored, known, "every target has a floor");
    for name in names {
        let files = std::fs::read_dir(corpus(&name)).map(Iterator::count).unwrap_or(0);
        assert!(files > 0, "fuzz target {name} has no corpus");
    }
}

/// The seeds each target's encoders make: all accepted but the edge cases (an empty pin body
/// is accepted, an empty input and a bare CSV header are not).
#[test]
fn seeds_made_by_the_encoders_are_accepted() {
    let write = std::env::var_os("CROSSMATCH_WRITE_FUZZ_SEEDS").is_some();
    for target in TARGETS {
        let seeds = seeds(target);
        let accepted = seeds.iter().filter(|seed| run(target, seed)).count();
        let (_, _, floor) = FLOORS.into_iter().find(|(name, ..)| *name == target).expect("a floor");
        assert!(accepted >= floor, "{target}: {accepted} of {} seeds accepted", seeds.len());
        if write {
            let dir = corpus(target);
            std::fs::create_dir_all(&dir).expect("the corpus directory is made");
            for (n, seed) in seeds.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{n}")), seed).expect("a seed is written");
            }
        }
    }
}
