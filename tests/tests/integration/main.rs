//! The federation-level tests, one module per subject, in one test binary (one link instead of
//! one per file). The modules share one process: each federation has its own temporary root
//! and ports the operating system picks.

mod api_client;
mod catchup;
mod federation;
mod hostile;
mod imports;
mod limits;
mod live_roster;
mod member_records;
mod quota_flood;
mod roster;
mod roster_conflict;
mod roster_flood;
mod rotation_roster;
mod share;
