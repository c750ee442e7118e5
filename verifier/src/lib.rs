//! Checking one sealed sealtrail event, for every reader alike: RFC 6962 trees
//! and inclusion proofs (`proof`), how trees are stored (`tile`), the checks and their failures (`verify`),
//! device registry states as the ledger pins them (`keyset`) and proof bundles
//! (`bundle`). It reads nothing itself: the caller brings the payload, the
//! proof, the ledger's seal and the device's leaf. So it depends on the formats
//! (`schemas` without its database and command-line parts) and on hashing only,
//! and a brand, a customs office or another language's port can build on it
//! alone (`tests/dependencies.rs` holds it to that).

pub mod bundle;
pub mod keyset;
pub mod proof;
pub mod tile;
pub mod verify;
