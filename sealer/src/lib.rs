//! The sealer's library: the pure sealing logic (trees, proofs, epochs) and the
//! ClickHouse rows it writes, which the binary, the integration tests and the
//! benchmarks share.

pub mod bundle;
pub mod epoch;
pub mod keyset;
pub mod memory;
pub mod proof;
pub mod store;
pub mod verify;
