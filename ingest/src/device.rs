//! `ingest device add|list|rotate|revoke`: scanner key pairs and their registration.
//! The private key stays in a file only its owner can read (it belongs on the
//! device); the public key goes to the registry in `sealtrail.devices`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ed25519_dalek::SigningKey;

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Make an Ed25519 key pair for a new scanner and register its public key.
    Add(AddArgs),
    /// List every registered device with its state and public key.
    List,
    /// Give an active device a new key pair from now on (the old private key is
    /// kept as NAME.key.retired-UNIXTIME); events sealed before keep verifying.
    Rotate(AddArgs),
    /// Revoke a device for good: its events are refused from now on; events
    /// sealed before keep verifying and readers say the key was revoked since.
    Revoke {
        /// Device id.
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Device id: 1 to 64 characters of a-z, 0-9, '-', '_' or '.'.
    pub name: String,
    /// Folder for the key files NAME.key (private, mode 0600) and NAME.pub.
    #[arg(long, env = "SEALTRAIL_DEVICE_KEYS", default_value = ".local/devices")]
    pub keys_dir: PathBuf,
}

pub async fn run(command: DeviceCommand, clickhouse: &clickhouse::Client) -> anyhow::Result<()> {
    match command {
        DeviceCommand::Add(args) => add(&args, clickhouse, false).await,
        DeviceCommand::Rotate(args) => add(&args, clickhouse, true).await,
        DeviceCommand::List => {
            let devices = store::devices::list(clickhouse)
                .await
                .context("reading sealtrail.devices")?;
            println!(
                "{:<40} {:<8} {:>4} {:<20} public key",
                "device", "state", "keys", "changed (UTC)"
            );
            for d in &devices {
                println!(
                    "{:<40} {:<8} {:>4} {:<20} {}",
                    d.device_id,
                    if d.revoked { "revoked" } else { "active" },
                    d.keys,
                    schemas::time::format_rfc3339(i64::from(d.changed_at) * 1000, "")
                        .get(..19)
                        .unwrap_or(""),
                    hex::encode(d.public_key)
                );
            }
            eprintln!("{} devices", devices.len());
            Ok(())
        }
        DeviceCommand::Revoke { name } => {
            store::devices::revoke(clickhouse, &name).await?;
            println!("revoked {name}");
            Ok(())
        }
    }
}

async fn add(args: &AddArgs, clickhouse: &clickhouse::Client, rotate: bool) -> anyhow::Result<()> {
    if !schemas::event::is_device_id(&args.name) {
        bail!(
            "device name '{}' must be 1 to 64 characters of a-z, 0-9, '-', '_' or '.'",
            args.name
        );
    }
    let private = args.keys_dir.join(format!("{}.key", args.name));
    let public = args.keys_dir.join(format!("{}.pub", args.name));
    if !rotate && private.exists() {
        bail!(
            "{} already exists; not overwriting a device key",
            private.display()
        );
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).context("reading the system's random source")?;
    let key = SigningKey::from_bytes(&seed);
    if rotate {
        store::devices::rotate(clickhouse, &args.name, &key.verifying_key()).await?;
    } else {
        store::devices::register(clickhouse, &args.name, &key.verifying_key()).await?;
    }
    if rotate && private.exists() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for path in [&private, &public] {
            let mut retired = path.clone().into_os_string();
            retired.push(format!(".retired-{stamp}"));
            std::fs::rename(path, &retired)
                .with_context(|| format!("moving {} aside", path.display()))?;
        }
    }

    std::fs::create_dir_all(&args.keys_dir)
        .with_context(|| format!("creating {}", args.keys_dir.display()))?;
    write_key(&private, &hex::encode(seed), 0o600)?;
    write_key(&public, &hex::encode(key.verifying_key().as_bytes()), 0o644)?;
    println!(
        "{} {} (public key {})",
        if rotate { "rotated" } else { "registered" },
        args.name,
        hex::encode(key.verifying_key().as_bytes())
    );
    println!(
        "private key: {} (mode 0600; install it on the device)",
        private.display()
    );
    Ok(())
}

fn write_key(path: &Path, hex_text: &str, mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{hex_text}")?;
    Ok(())
}
