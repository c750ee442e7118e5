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
    #[command(flatten)]
    pub auth: schemas::kafka::KafkaAuth,
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
        Ok(c)
    }
}
