//! The sealer's library: the pure sealing logic (trees, proofs, epochs) and the
//! ClickHouse rows it writes, which the binary, the integration tests and the
//! benchmarks share.

pub mod epoch;
pub mod gatekeeper;
pub mod lease;
pub mod ledger;
pub mod memory;
pub mod metrics;
pub mod pin;
pub mod pipeline;
pub mod retry;

// Every query is the store crate's.
pub use store;

// The checks every reader runs live in the `verifier` crate, which builds
// without Kafka, ClickHouse, HTTP or EVM clients; re-exported under their old paths.
pub use verifier::{bundle, keyset, proof, tile, verify};
