//! Who a binary is to Kafka. The broker refuses anonymous clients and lets each
//! principal do only its part (gateway and scanners produce scan events, the
//! sealer reads them and writes dead letters), so every Kafka client of the
//! project authenticates with SASL/SCRAM as the principal of its role. Kept as
//! plain (key, value) settings so this crate needs no Kafka client library.

use std::path::{Path, PathBuf};

/// How to authenticate to Kafka; every flag can also come from the environment.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KafkaAuth {
    /// SASL/SCRAM user (default: this command's role, e.g. sealer, gateway, scanner).
    #[arg(long, env = "SEALTRAIL_KAFKA_USER")]
    pub kafka_user: Option<String>,
    /// File whose first line is the user's password (default:
    /// $SEALTRAIL_STATE_DIR/kafka/users/USER.password, which `deploy/local/up`
    /// writes; without a password the client connects unauthenticated).
    #[arg(long, env = "SEALTRAIL_KAFKA_PASSWORD_FILE")]
    pub kafka_password_file: Option<PathBuf>,
    /// SASL_PLAINTEXT (loopback, or a private network) or SASL_SSL.
    #[arg(
        long,
        env = "SEALTRAIL_KAFKA_SECURITY_PROTOCOL",
        default_value = "SASL_PLAINTEXT"
    )]
    pub kafka_security_protocol: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaAuthError {
    #[error("reading the Kafka password of user '{user}' from {path}: {source}")]
    Password {
        user: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the Kafka password file {0} is empty")]
    Empty(PathBuf),
    #[error("--kafka-security-protocol must be SASL_PLAINTEXT or SASL_SSL, not '{0}'")]
    Protocol(String),
}

/// The SCRAM mechanism the broker offers.
pub const MECHANISM: &str = "SCRAM-SHA-512";

/// Where the local stack keeps its state (`deploy/local`): `$SEALTRAIL_STATE_DIR`,
/// else `.local`.
pub fn state_dir() -> PathBuf {
    std::env::var_os("SEALTRAIL_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".local"))
}

/// The password file the local stack writes for `user`.
pub fn local_password_file(state: &Path, user: &str) -> PathBuf {
    state.join("kafka/users").join(format!("{user}.password"))
}

/// The state folder of this checkout's local stack: `$SEALTRAIL_STATE_DIR`, else
/// `.local` at the repository root. For the test harness and tools run from any
/// folder of the checkout; the binaries use `state_dir`.
pub fn checkout_state_dir() -> PathBuf {
    std::env::var_os("SEALTRAIL_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.local")))
}

/// The settings of `user` of the local stack whose state folder is `state`
/// (`deploy/local`): what the test harness and local tools authenticate with.
pub fn local(state: &Path, user: &str) -> Result<Vec<(&'static str, String)>, KafkaAuthError> {
    KafkaAuth {
        kafka_user: Some(user.to_string()),
        kafka_password_file: Some(local_password_file(state, user)),
        kafka_security_protocol: "SASL_PLAINTEXT".into(),
    }
    .settings(user)
}

impl KafkaAuth {
    /// The client settings for a process acting as `role` unless a user is
    /// named. Empty when there is no password to use: an open cluster.
    pub fn settings(&self, role: &str) -> Result<Vec<(&'static str, String)>, KafkaAuthError> {
        let user = self.kafka_user.as_deref().unwrap_or(role).to_string();
        let (path, explicit) = match &self.kafka_password_file {
            Some(p) => (p.clone(), true),
            None => (local_password_file(&state_dir(), &user), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // No local credentials and none asked for: the cluster is open.
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Vec::new())
            }
            Err(source) => return Err(KafkaAuthError::Password { user, path, source }),
        };
        let password = text.lines().next().unwrap_or("").trim().to_string();
        if password.is_empty() {
            return Err(KafkaAuthError::Empty(path));
        }
        let protocol = self.kafka_security_protocol.to_ascii_uppercase();
        if protocol != "SASL_PLAINTEXT" && protocol != "SASL_SSL" {
            return Err(KafkaAuthError::Protocol(protocol));
        }
        Ok(vec![
            ("security.protocol", protocol),
            ("sasl.mechanism", MECHANISM.to_string()),
            ("sasl.username", user),
            ("sasl.password", password),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_gives_scram_settings_and_none_gives_an_open_client() {
        let dir = std::env::temp_dir().join(format!("kafka-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sealer.password");
        std::fs::write(&file, "s3cret\n").unwrap();
        let auth = KafkaAuth {
            kafka_password_file: Some(file.clone()),
            kafka_security_protocol: "SASL_PLAINTEXT".into(),
            ..Default::default()
        };
        let s = auth.settings("sealer").unwrap();
        assert!(s.contains(&("sasl.username", "sealer".into())));
        assert!(s.contains(&("sasl.password", "s3cret".into())));
        assert!(s.contains(&("sasl.mechanism", MECHANISM.into())));

        let missing = KafkaAuth {
            kafka_password_file: Some(dir.join("nobody.password")),
            ..auth.clone()
        };
        assert!(matches!(
            missing.settings("sealer"),
            Err(KafkaAuthError::Password { .. })
        ));
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(auth.settings("x"), Err(KafkaAuthError::Empty(_))));
        let bad = KafkaAuth {
            kafka_security_protocol: "PLAINTEXT".into(),
            ..auth
        };
        std::fs::write(&file, "p\n").unwrap();
        assert!(matches!(
            bad.settings("x"),
            Err(KafkaAuthError::Protocol(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
