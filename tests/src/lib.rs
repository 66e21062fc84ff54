//! Harness for federation-level tests: builds members, rosters and nodes in temporary directories.
