//! Producing scan events to Kafka: one idempotent, acks=all producer configuration
//! for the gateway and the simulator, so a record Kafka acknowledged is never lost
//! or duplicated by a retry, and one item's events keep their order in one partition.

use clap::Args;
use rdkafka::ClientConfig;

/// Where and how to produce; flags or `SEALTRAIL_KAFKA_*` environment variables.
#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "SEALTRAIL_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_brokers: String,
    /// Topic scan events are produced to.
    #[arg(long, env = "SEALTRAIL_KAFKA_TOPIC", default_value = "scan-events")]
    pub topic: String,
    /// How long Kafka may take to acknowledge a record before it counts as failed.
    #[arg(long, env = "SEALTRAIL_KAFKA_TIMEOUT_MS", default_value_t = 5000)]
    pub kafka_timeout_ms: u64,
    /// A librdkafka producer property, KEY=VALUE, applied over the defaults
    /// (repeatable; comma-separated in the environment), e.g. linger.ms=20.
    /// Properties that the delivery contract or the credentials rest on are
    /// refused: acks, idempotence, the partitioner, brokers and security.
    #[arg(
        long = "kafka-option",
        env = "SEALTRAIL_KAFKA_OPTIONS",
        value_delimiter = ',',
        value_parser = parse_option,
        value_name = "KEY=VALUE"
    )]
    pub kafka_options: Vec<(String, String)>,
    #[command(flatten)]
    pub auth: schemas::kafka::KafkaAuth,
}

/// Why each is not an option: every record acknowledged once and kept
/// (acks, idempotence), an item's events in one partition whoever produced
/// them (partitioner), and the principal the ACLs are written for.
const FIXED: &[&str] = &[
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "partitioner",
    "bootstrap.servers",
    "metadata.broker.list",
    "security.protocol",
];

fn parse_option(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("{s:?} has no key"));
    }
    if FIXED.contains(&key) || key.starts_with("sasl.") || key.starts_with("ssl.") {
        return Err(format!(
            "{key} is set by sealtrail and cannot be overridden (see --help)"
        ));
    }
    Ok((key.to_string(), value.trim().to_string()))
}

impl KafkaArgs {
    /// The producer configuration of a process acting as `role` (its Kafka
    /// principal unless --kafka-user names another).
    pub fn producer_config(&self, role: &str) -> anyhow::Result<ClientConfig> {
        let mut c = ClientConfig::new();
        for (k, v) in self.auth.settings(role)? {
            c.set(k, v);
        }
        c.set("bootstrap.servers", &self.kafka_brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // murmur2 is what Java producers use: every client puts an item in the same partition.
            .set("partitioner", "murmur2_random")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            .set("queue.buffering.max.kbytes", "131072")
            .set("message.timeout.ms", self.kafka_timeout_ms.to_string());
        for (k, v) in &self.kafka_options {
            c.set(k, v);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_option;

    #[test]
    fn options_are_key_value_and_the_contract_ones_are_refused() {
        assert_eq!(
            parse_option("linger.ms = 20"),
            Ok(("linger.ms".into(), "20".into()))
        );
        assert!(parse_option("linger.ms").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_option("=1").unwrap_err().contains("no key"));
        for key in [
            "acks",
            "enable.idempotence",
            "partitioner",
            "sasl.password",
            "security.protocol",
        ] {
            let e = parse_option(&format!("{key}=x")).unwrap_err();
            assert!(e.contains(key) && e.contains("cannot be overridden"), "{e}");
        }
    }
}
