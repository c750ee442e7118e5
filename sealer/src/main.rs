//! `sealer`: seals scan events into one-second Merkle epochs, stores each event
//! with its inclusion proof in ClickHouse and anchors each root on the ledger.

mod audit;
mod packing;
mod query;
mod run;
mod serve;
mod trail;

// The sealing logic, the pipeline and its rows live in the library, shared
// with tests and benches.
use sealer::{epoch, ledger, proof, store, tile};
use store::migrate;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sealer",
    version,
    about = "Seals scan events into Merkle epochs anchored on a ledger"
)]
struct Cli {
    #[command(flatten)]
    clickhouse: sealer::store::ClickHouseArgs,
    #[command(flatten)]
    ledger: ledger::LedgerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the ClickHouse migrations in schemas/clickhouse that have not run yet.
    Migrate(migrate::MigrateArgs),
    /// Consume scan-events and seal an epoch every second (SIGTERM seals the open one, then exits).
    Run(run::RunArgs),
    /// Compare the topic, the sealed epochs in ClickHouse and the roots on the ledger.
    Audit(audit::AuditArgs),
    /// Check one event (or a proof bundle) against its row, its device and the ledger.
    Verify(trail::VerifyArgs),
    /// An item's journey, one line per step, each verified against the ledger.
    Trail(trail::TrailArgs),
    /// Serve the trail API and the item ID-card page on :8081.
    Serve(serve::ServeArgs),
    /// Manage the ledger contract.
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Deploy a SealRegistry and write its address to --ledger-contract-file.
    Deploy {
        /// Deploy even if the contract file names a contract that exists.
        #[arg(long)]
        force: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SEALTRAIL_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The crash points of the exactly-once tests, from FAILPOINTS (test builds).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    let client = cli.clickhouse.client();
    match cli.command {
        Command::Migrate(args) => Ok(migrate::run(
            &cli.clickhouse.server(),
            &cli.clickhouse.clickhouse_database,
            &args,
        )
        .await?),
        Command::Run(args) => {
            sealer::memory::keep_freed_memory();
            run::run(args, client, cli.ledger.connect()?).await
        }
        Command::Audit(args) => {
            if audit::run(&args, &client, &cli.ledger.connect()?).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Verify(args) => {
            std::process::exit(trail::verify_command(&args, &client, &cli.ledger).await?)
        }
        Command::Trail(args) => {
            std::process::exit(trail::trail_command(&args, &client, &cli.ledger).await?)
        }
        Command::Serve(args) => serve::serve(args, client, &cli.ledger).await,
        Command::Ledger(LedgerCommand::Deploy { force }) => deploy(&cli.ledger, force).await,
    }
}

async fn deploy(args: &ledger::LedgerArgs, force: bool) -> anyhow::Result<()> {
    if !force {
        if let Ok(existing) = args.connect() {
            match existing.runs_this_registry().await {
                Ok(Some(true)) => {
                    println!(
                        "SealRegistry already deployed at {} (use --force for a new one)",
                        existing.address()
                    );
                    return Ok(());
                }
                // Roots anchored there verify only against it: replacing it is
                // the operator's decision, never a side effect.
                Ok(Some(false)) => anyhow::bail!(
                    "the contract at {} is not this sealer's SealRegistry (an older version?): \
                     `sealer ledger deploy --force` deploys a new one, and epochs anchored on \
                     the old one then verify only against the old address",
                    existing.address()
                ),
                Ok(None) | Err(_) => {}
            }
        }
    }
    let address = args.deploy().await?;
    if let Some(dir) = args.ledger_contract_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.ledger_contract_file, format!("{address}\n"))?;
    println!(
        "deployed SealRegistry at {address} (written to {})",
        args.ledger_contract_file.display()
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM: the start of a graceful shutdown.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}
