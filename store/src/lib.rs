//! Every query sealtrail runs on ClickHouse, in one place: the device registry
//! (`devices`), the ids already sealed (`sealed_ids`), event and epoch rows
//! (`epochs`), each epoch's tree (`tiles`), trails (`trail`), the EPCIS query
//! (`query`), the audit's reads (`audit`) and the migrations'
//! runner (`migrate`). The migrations themselves are files in
//! `schemas/clickhouse/`.
//!
//! The database is a setting (`--clickhouse-database`, default `sealtrail`):
//! queries name their tables without it and the client carries it, so a test
//! or a second deployment can have a database of its own.

pub mod audit;
pub mod config;
pub mod devices;
pub mod epochs;
pub mod migrate;
pub mod query;
pub mod sealed_ids;
pub mod tiles;
pub mod trail;

pub use config::ClickHouseArgs;
