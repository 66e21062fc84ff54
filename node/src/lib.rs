//! The crossmatch node: key files, and (as they land) the store, matching engine, mesh and
//! operator surface. The `crossmatch` binary is a thin shell over this library.

/// The allocator of every binary built on this library (the node, its tests and benches), unless
/// built without the `mimalloc` feature. sled 0.34 copies a node at every insert and frees the
/// copy it replaces: under glibc's malloc, allocating and freeing took about a quarter of a
/// profile of the import bench, and with mimalloc writes into a large store ran 1.5 to 1.9
/// times as fast (build `3c52e52`; docs/BENCHMARKS.md, "The allocator").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
