//! `sealer migrate`: applies the embedded ClickHouse migrations in order, each once.
//!
//! The version table is the record of what ran. A migration whose file changed
//! after it was applied is refused rather than silently skipped: schema changes
//! are new numbered files.

use anyhow::{bail, Context};
use clap::Args;
use clickhouse::Row;
use schemas::migrations::{Migration, MIGRATIONS, VERSION_TABLE};
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

#[derive(Row, Deserialize, Debug)]
struct Applied {
    version: u32,
    name: String,
    checksum: String,
}

pub async fn run(client: &clickhouse::Client, args: &MigrateArgs) -> anyhow::Result<()> {
    client
        .query("CREATE DATABASE IF NOT EXISTS sealtrail")
        .execute()
        .await
        .context("creating database sealtrail")?;
    client
        .query(&format!(
            "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} \
             (version UInt32, name String, checksum String, applied_at DateTime) \
             ENGINE = MergeTree ORDER BY version"
        ))
        .execute()
        .await
        .with_context(|| format!("creating {VERSION_TABLE}"))?;
    let applied: Vec<Applied> = client
        .query(&format!(
            "SELECT version, name, checksum FROM {VERSION_TABLE} ORDER BY version"
        ))
        .fetch_all()
        .await
        .with_context(|| format!("reading {VERSION_TABLE}"))?;

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
        for stmt in m.statements() {
            client
                .query(&stmt)
                .execute()
                .await
                .with_context(|| format!("migration {} failed at:\n{stmt}", m.name))?;
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
            .with_context(|| format!("recording migration {}", m.name))?;
        tracing::info!(migration = m.name, "applied");
        if !args.quiet {
            println!("applied {}", m.name);
        }
    }
    Ok(())
}

/// Every recorded migration must still exist with the same text.
fn check_applied(applied: &[Applied]) -> anyhow::Result<()> {
    for a in applied {
        match MIGRATIONS.iter().find(|m| m.version == a.version) {
            None => bail!(
                "ClickHouse has migration {} ({}) that this binary does not know: it is older than the schema",
                a.version,
                a.name
            ),
            Some(m) if m.checksum() != a.checksum => bail!(
                "migration {} was edited after it was applied (checksum {} in ClickHouse, {} in this binary); add a new migration instead",
                m.name,
                a.checksum,
                m.checksum()
            ),
            Some(_) => {}
        }
    }
    Ok(())
}
