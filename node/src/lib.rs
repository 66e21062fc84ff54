//! The crossmatch node: key files, and (as they land) the store, matching engine, mesh and
//! operator surface. The `crossmatch` binary is a thin shell over this library.

pub mod api;
pub mod audit;
pub mod canon_cli;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod federation_cli;
pub mod http_client;
pub mod hunt;
pub mod import;
pub mod init_cli;
pub mod keyfile;
pub mod local;
pub mod logging;
pub mod mesh;
pub mod notify;
pub mod observe_cli;
pub mod reload;
pub mod roster_file;
pub mod stix;
pub mod store;
#[cfg(feature = "test-support")]
pub mod test_support;
