//! `ingest`: the scan-event write path. Its commands arrive with the event model.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ingest",
    version,
    about = "The scan-event write path of sealtrail"
)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    Cli::parse();
    Ok(())
}
