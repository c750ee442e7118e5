//! `ingest`: the scan-event write path — the HTTP gateway scanners post to, the
//! scanner fleet simulator, and device key management.

mod capture;
mod corpus;
mod device;
mod gateway;
mod journey;
mod producer;
mod quota;
mod shipment;
mod sign;
mod simulate;

use clap::{Parser, Subcommand};
use store::ClickHouseArgs;

#[derive(Parser)]
#[command(
    name = "ingest",
    version,
    about = "The scan-event write path of sealtrail"
)]
struct Cli {
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP gateway: POST /v1/events, EPCIS 2.0 capture (POST /capture,
    /// GET /capture/{id}, POST /events), /healthz, /readyz, /metrics.
    Serve(gateway::ServeArgs),
    /// Simulate a fleet of scanners moving items through their journeys.
    Simulate(simulate::SimulateArgs),
    /// Manage scanner devices and their keys.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Sign an EPCIS 2.0 document's events with a device key, for POST /capture.
    Sign(sign::SignArgs),
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
    let cli = Cli::parse();
    let clickhouse = cli.clickhouse.client();
    match cli.command {
        Command::Serve(args) => gateway::serve(args, clickhouse).await,
        Command::Simulate(args) => simulate::run(args, clickhouse).await,
        Command::Device(command) => device::run(command, &clickhouse).await,
        Command::Sign(args) => sign::run(&args),
    }
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
