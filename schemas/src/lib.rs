//! The wire contracts of sealtrail, typed for Rust.
//!
//! The files under `schemas/` (ClickHouse DDL, and later the Avro schema and the
//! ledger contract) are the source of truth; this crate embeds them so every binary
//! agrees on exactly one version of each.

pub mod migrations;
