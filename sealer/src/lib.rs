//! The sealer's library: the pure sealing logic (trees, proofs, epochs) that the
//! binary, the integration tests and the benchmarks share.

pub mod bundle;
pub mod epoch;
pub mod proof;
pub mod verify;
