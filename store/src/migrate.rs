//! `sealer migrate`: applies the embedded ClickHouse migrations in order, each once.
//!
//! The version table is the record of what ran. A migration whose file changed
//! after it was applied is refused rather than silently skipped: schema changes
//! are new numbered files.

use clap::Args;
use clickhouse::Row;
use schemas::migrations::{Migration, MIGRATIONS, VERSION_TABLE};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{what}: {source}")]
    ClickHouse {
        what: String,
        source: clickhouse::error::Error,
    },
    #[error("ClickHouse has migration {version} ({name}) that this binary does not know: it is older than the schema")]
    Unknown { version: u32, name: String },
    #[error("migration {name} was edited after it was applied (checksum {applied} in ClickHouse, {ours} in this binary); add a new migration instead")]
    Edited {
        name: String,
        applied: String,
        ours: String,
    },
}

/// What failed, for a ClickHouse error.
fn doing(what: impl Into<String>) -> impl FnOnce(clickhouse::error::Error) -> MigrateError {
    let what = what.into();
    move |source| MigrateError::ClickHouse { what, source }
}
use serde::Deserialize;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Only list each migration and whether it has been applied.
    #[arg(long)]
    list: bool,
    /// Print nothing when there is nothing to apply.
    #[arg(long, short)]
    quiet: bool,
}

impl MigrateArgs {
    /// Apply, printing nothing when there is nothing to apply (for callers
    /// that are not the command line, e.g. the tests' labs).
    pub fn quiet() -> Self {
        MigrateArgs {
            list: false,
            quiet: true,
        }
    }
}

#[derive(Row, Deserialize, Debug)]
struct Applied {
    version: u32,
    name: String,
    checksum: String,
}

/// Applies what has not run yet to `database` (created if missing), as
/// `args` says; `client` names no database (it may not exist yet).
pub async fn run(
    client: &clickhouse::Client,
    database: &str,
    args: &MigrateArgs,
) -> Result<(), MigrateError> {
    client
        .query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
        .execute()
        .await
        .map_err(doing(format!("creating database {database}")))?;
    let client = &client.clone().with_database(database);
    client
        .query(&format!(
            "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} \
             (version UInt32, name String, checksum String, applied_at DateTime) \
             ENGINE = MergeTree ORDER BY version"
        ))
        .execute()
        .await
        .map_err(doing(format!("creating {VERSION_TABLE}")))?;
    let applied: Vec<Applied> = client
        .query(&format!(
            "SELECT version, name, checksum FROM {VERSION_TABLE} ORDER BY version"
        ))
        .fetch_all()
        .await
        .map_err(doing(format!("reading {VERSION_TABLE}")))?;

    check_applied(&applied)?;
    let pending: Vec<&Migration> = MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect();

    if args.list {
        for m in MIGRATIONS {
            let state = if pending.iter().any(|p| p.version == m.version) {
                "pending"
            } else {
                "applied"
            };
            println!("{:03} {:<40} {state}", m.version, m.name);
        }
        return Ok(());
    }
    if pending.is_empty() && !args.quiet {
        println!("schema is current ({} migrations applied)", applied.len());
    }
    for m in pending {
        for stmt in m.statements_in(database) {
            client
                .query(&stmt)
                .execute()
                .await
                .map_err(doing(format!("migration {} failed at:\n{stmt}", m.name)))?;
        }
        client
            .query(&format!(
                "INSERT INTO {VERSION_TABLE} VALUES (?, ?, ?, now())"
            ))
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum())
            .execute()
            .await
            .map_err(doing(format!("recording migration {}", m.name)))?;
        tracing::info!(migration = m.name, "applied");
        if !args.quiet {
            println!("applied {}", m.name);
        }
    }
    Ok(())
}

/// Every recorded migration must still exist with the same text.
fn check_applied(applied: &[Applied]) -> Result<(), MigrateError> {
    for a in applied {
        match MIGRATIONS.iter().find(|m| m.version == a.version) {
            None => {
                return Err(MigrateError::Unknown {
                    version: a.version,
                    name: a.name.clone(),
                })
            }
            Some(m) if m.checksum() != a.checksum => {
                return Err(MigrateError::Edited {
                    name: m.name.to_string(),
                    applied: a.checksum.clone(),
                    ours: m.checksum(),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}
