//! The queries over the device registry, the table `devices`: reading every
//! device's key history (and the rows added since), and appending the rows that
//! add, rotate and revoke devices. The history itself, and what it says, is
//! `schemas::devices`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;

use clickhouse::Row;
use schemas::devices::{Device, DeviceRow, KeyHistory, ACTIVE, REVOKED};
use serde::{Deserialize, Serialize};

/// A `DeviceRow` as the table holds it.
#[derive(Row, Serialize, Deserialize)]
struct Stored {
    device_id: String,
    public_key: [u8; 32],
    status: i8,
    changed_at: u32,
    version: u64,
}

impl From<Stored> for DeviceRow {
    fn from(s: Stored) -> Self {
        DeviceRow {
            device_id: s.device_id,
            public_key: s.public_key,
            status: s.status,
            changed_at: s.changed_at,
            version: s.version,
        }
    }
}

impl From<&DeviceRow> for Stored {
    fn from(r: &DeviceRow) -> Self {
        Stored {
            device_id: r.device_id.clone(),
            public_key: r.public_key,
            status: r.status,
            changed_at: r.changed_at,
            version: r.version,
        }
    }
}

async fn fetch(q: clickhouse::query::Query) -> Result<Vec<DeviceRow>, RegistryError> {
    let rows: Vec<Stored> = q.fetch_all().await?;
    Ok(rows.into_iter().map(DeviceRow::from).collect())
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("device '{0}' is already registered and active; use `ingest device rotate` to give it a new key")]
    AlreadyActive(String),
    #[error("device '{0}' was revoked; revocation is final, register the scanner under a new id")]
    Revoked(String),
    #[error("no device named '{0}'")]
    Unknown(String),
}

fn now() -> (u32, u64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as u32, d.as_micros() as u64)
}

const SELECT_ROWS: &str = "SELECT device_id, public_key, status, changed_at, version FROM devices";

/// Rows dated further ahead than this are not believed (yet): a row from the
/// future would otherwise hide every row written after it from `refresh`.
const MAX_CLOCK_AHEAD_US: u64 = 300_000_000;

/// A refresh reads again this far before the newest row it has, for rows that
/// became visible late (another writer's slower clock).
const REFRESH_MARGIN_US: u64 = 60_000_000;

/// Every device's key history.
pub async fn history(client: &clickhouse::Client) -> Result<KeyHistory, RegistryError> {
    let rows = fetch(
        client
            .query(&format!("{SELECT_ROWS} WHERE version <= ?"))
            .bind(now().1 + MAX_CLOCK_AHEAD_US),
    )
    .await?;
    Ok(KeyHistory::from_rows(rows))
}

/// Reads the rows written since `history` was read (or last refreshed). Rows are
/// only appended, so this is all that can have changed.
pub async fn refresh(
    client: &clickhouse::Client,
    history: &mut KeyHistory,
) -> Result<usize, RegistryError> {
    let rows = fetch(
        client
            .query(&format!("{SELECT_ROWS} WHERE version > ? AND version <= ?"))
            .bind(history.cutoff().saturating_sub(REFRESH_MARGIN_US))
            .bind(now().1 + MAX_CLOCK_AHEAD_US),
    )
    .await?;
    let before = history.change_count();
    history.extend(rows);
    Ok(history.change_count() - before)
}

/// Every device, current state, sorted by id.
pub async fn list(client: &clickhouse::Client) -> Result<Vec<Device>, RegistryError> {
    Ok(history(client).await?.current())
}

async fn append(client: &clickhouse::Client, rows: &[DeviceRow]) -> Result<(), RegistryError> {
    let mut insert = client.insert::<Stored>("devices").await?;
    for row in rows {
        insert.write(&Stored::from(row)).await?;
    }
    insert.end().await?;
    Ok(())
}

fn row(device_id: &str, public_key: [u8; 32], status: i8) -> DeviceRow {
    let (changed_at, version) = now();
    DeviceRow {
        device_id: device_id.into(),
        public_key,
        status,
        changed_at,
        version,
    }
}

/// Registers a new device. A device id is registered once: an active one gets a
/// new key with `rotate`, a revoked one stays revoked.
pub async fn register(
    client: &clickhouse::Client,
    device_id: &str,
    key: &VerifyingKey,
) -> Result<(), RegistryError> {
    if let Some(d) = current(client, device_id).await? {
        return Err(if d.revoked {
            RegistryError::Revoked(device_id.into())
        } else {
            RegistryError::AlreadyActive(device_id.into())
        });
    }
    append(client, &[row(device_id, key.to_bytes(), ACTIVE)]).await
}

/// Gives an active device a new key from now on; events sealed before keep
/// verifying with the old one.
pub async fn rotate(
    client: &clickhouse::Client,
    device_id: &str,
    key: &VerifyingKey,
) -> Result<(), RegistryError> {
    match current(client, device_id).await? {
        None => Err(RegistryError::Unknown(device_id.into())),
        Some(d) if d.revoked => Err(RegistryError::Revoked(device_id.into())),
        Some(_) => append(client, &[row(device_id, key.to_bytes(), ACTIVE)]).await,
    }
}

/// What registering a fleet did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Registered {
    pub added: usize,
    pub rotated: usize,
    /// Revoked devices, left revoked: their events will be refused.
    pub revoked: Vec<String>,
}

/// Registers many devices at once: new ones are added, active ones with another
/// key are rotated to this one, revoked ones are never re-activated.
pub async fn ensure_registered(
    client: &clickhouse::Client,
    devices: &[(String, VerifyingKey)],
) -> Result<Registered, RegistryError> {
    let known: HashMap<String, Device> = list(client)
        .await?
        .into_iter()
        .map(|d| (d.device_id.clone(), d))
        .collect();
    let mut out = Registered::default();
    let mut rows = Vec::new();
    for (id, key) in devices {
        match known.get(id) {
            Some(d) if d.revoked => out.revoked.push(id.clone()),
            Some(d) if d.public_key == key.to_bytes() => {}
            Some(_) => {
                out.rotated += 1;
                rows.push(row(id, key.to_bytes(), ACTIVE));
            }
            None => {
                out.added += 1;
                rows.push(row(id, key.to_bytes(), ACTIVE));
            }
        }
    }
    if !rows.is_empty() {
        append(client, &rows).await?;
    }
    Ok(out)
}

async fn current(
    client: &clickhouse::Client,
    device_id: &str,
) -> Result<Option<Device>, RegistryError> {
    let rows = fetch(
        client
            .query(&format!("{SELECT_ROWS} WHERE device_id = ?"))
            .bind(device_id),
    )
    .await?;
    Ok(KeyHistory::from_rows(rows).current().pop())
}

/// Revokes a device: events it signs are refused from now on; events sealed
/// before keep verifying, and readers say the key was revoked since.
pub async fn revoke(client: &clickhouse::Client, device_id: &str) -> Result<(), RegistryError> {
    let d = current(client, device_id)
        .await?
        .ok_or_else(|| RegistryError::Unknown(device_id.to_string()))?;
    if d.revoked {
        return Ok(());
    }
    append(client, &[row(device_id, d.public_key, REVOKED)]).await
}
