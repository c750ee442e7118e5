//! The device registry in `sealtrail.devices`: which scanners exist, their Ed25519
//! public keys, and whether they are still trusted. Rows are only ever appended;
//! the row with the highest version is a device's current state.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use clickhouse::Row;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

const ACTIVE: i8 = 1;
const REVOKED: i8 = 2;

#[derive(Row, Serialize, Deserialize, Debug)]
struct DeviceRow {
    device_id: String,
    public_key: [u8; 32],
    status: i8,
    changed_at: u32,
    version: u64,
}

/// A device's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: String,
    pub public_key: [u8; 32],
    pub revoked: bool,
    /// Unix seconds of the last change.
    pub changed_at: u32,
}

impl Device {
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.public_key).ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("device '{0}' is already registered and active; revoke it first to give it a new key")]
    AlreadyActive(String),
    #[error("no device named '{0}'")]
    Unknown(String),
}

fn now() -> (u32, u64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    (d.as_secs() as u32, d.as_micros() as u64)
}

/// Every device, current state, sorted by id.
pub async fn list(client: &clickhouse::Client) -> Result<Vec<Device>, RegistryError> {
    let rows: Vec<DeviceRow> = client
        .query(
            "SELECT device_id, argMax(public_key, version), argMax(status, version), \
             max(changed_at), max(version) FROM sealtrail.devices GROUP BY device_id ORDER BY device_id",
        )
        .fetch_all()
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Device {
            device_id: r.device_id,
            public_key: r.public_key,
            revoked: r.status != ACTIVE,
            changed_at: r.changed_at,
        })
        .collect())
}

/// Current state by device id: what the gateway checks signatures against.
pub async fn snapshot(
    client: &clickhouse::Client,
) -> Result<HashMap<String, Device>, RegistryError> {
    Ok(list(client)
        .await?
        .into_iter()
        .map(|d| (d.device_id.clone(), d))
        .collect())
}

async fn append(client: &clickhouse::Client, rows: &[DeviceRow]) -> Result<(), RegistryError> {
    // The crate quotes the table name whole: name the database separately.
    let mut insert = client
        .clone()
        .with_database("sealtrail")
        .insert::<DeviceRow>("devices")
        .await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}

/// Registers a new device, or a new key for a revoked one.
pub async fn register(
    client: &clickhouse::Client,
    device_id: &str,
    key: &VerifyingKey,
) -> Result<(), RegistryError> {
    if let Some(d) = snapshot(client).await?.get(device_id) {
        if !d.revoked {
            return Err(RegistryError::AlreadyActive(device_id.to_string()));
        }
    }
    let (changed_at, version) = now();
    append(
        client,
        &[DeviceRow {
            device_id: device_id.into(),
            public_key: key.to_bytes(),
            status: ACTIVE,
            changed_at,
            version,
        }],
    )
    .await
}

/// Registers many devices at once, skipping those already active with the same key.
/// Returns how many rows were added.
pub async fn ensure_registered(
    client: &clickhouse::Client,
    devices: &[(String, VerifyingKey)],
) -> Result<usize, RegistryError> {
    let known = snapshot(client).await?;
    let (changed_at, version) = now();
    let rows: Vec<DeviceRow> = devices
        .iter()
        .filter(|(id, key)| {
            known
                .get(id)
                .is_none_or(|d| d.revoked || d.public_key != key.to_bytes())
        })
        .map(|(id, key)| DeviceRow {
            device_id: id.clone(),
            public_key: key.to_bytes(),
            status: ACTIVE,
            changed_at,
            version,
        })
        .collect();
    if !rows.is_empty() {
        append(client, &rows).await?;
    }
    Ok(rows.len())
}

/// Revokes a device: events it signs from now on are refused.
pub async fn revoke(client: &clickhouse::Client, device_id: &str) -> Result<(), RegistryError> {
    let known = snapshot(client).await?;
    let d = known
        .get(device_id)
        .ok_or_else(|| RegistryError::Unknown(device_id.to_string()))?;
    let (changed_at, version) = now();
    append(
        client,
        &[DeviceRow {
            device_id: device_id.into(),
            public_key: d.public_key,
            status: REVOKED,
            changed_at,
            version,
        }],
    )
    .await
}
