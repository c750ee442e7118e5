//! `sealer`: the sealing service and its read side. For now: `sealer migrate`.

mod migrate;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sealer",
    version,
    about = "Seals scan events into Merkle epochs anchored on a ledger"
)]
struct Cli {
    #[command(flatten)]
    clickhouse: schemas::store::ClickHouseArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the ClickHouse migrations in schemas/clickhouse that have not run yet.
    Migrate(migrate::MigrateArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SEALTRAIL_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let client = cli.clickhouse.client();
    match cli.command {
        Command::Migrate(args) => migrate::run(&client, &args).await,
    }
}
