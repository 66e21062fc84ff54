//! Import benchmark (placeholder until the import job runner lands): 26,000 rows through a
//! member's API from the upload's first byte to the job reading `done`, and 1,000,000 rows in
//! bounded memory (peak RSS). `cargo bench -p crossmatch-node --bench import`.

fn main() {}
