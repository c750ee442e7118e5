//! What the schemas' integration tests share: GS1's reference event hash
//! generator run on document files, and a deterministic generator. Each test
//! file uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/epcis_reference_hashes.py"
);

/// The reference's hashes and pre-hashes of the events of these document
/// files (`epcis_reference_hashes.py`); panics saying what to install when it
/// cannot run. A time without offset is in the machine's zone to the
/// reference: it runs in UTC, as ours reads it.
pub fn reference_hashes(paths: &[PathBuf]) -> Value {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .args(paths)
        .env("TZ", "UTC")
        .output();
    let install = "python3 -m pip install epcis-event-hash-generator==1.9.3";
    let out = out
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); install Python 3, then `{install}`"));
    assert!(
        out.status.success(),
        "the reference failed ({}); is it installed? `{install}`\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: not JSON ({e}): {}",
            Path::new(SCRIPT).display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A folder of its own under the temporary directory.
pub fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sealtrail-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ))
}

/// xorshift64*: deterministic, so a failure reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
