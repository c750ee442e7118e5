//! The wire contracts of sealtrail, typed for Rust.
//!
//! The files under `schemas/` (the Avro schema of a scan event, its JSON Schema,
//! the ClickHouse DDL) are the source of truth; this crate embeds them so every
//! binary agrees on exactly one version of each.

pub mod avro;
pub mod country;
pub mod devices;
pub mod epcis;
pub mod epcis_event;
pub mod event;
pub mod event_hash;
pub mod gate;
pub mod json;
#[cfg(feature = "cli")]
pub mod kafka;
pub mod leaf;
pub mod migrations;
pub mod partition;
pub mod seen;
pub mod signature;
pub mod time;

pub use event::{
    Action, BizStep, BizTransaction, BizTransactionType, Disposition, FieldError, ScanEvent,
};
