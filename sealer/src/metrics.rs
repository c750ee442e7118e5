//! The sealer's Prometheus metrics, served on :9464/metrics.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

pub struct Metrics {
    pub registry: Registry,
    pub consumed: IntCounter,
    pub sealed: IntCounter,
    pub dlq: IntCounterVec,
    pub seen_lookups: IntCounter,
    pub gate_duration: Histogram,
    pub epochs_sealed: IntCounter,
    pub epochs_anchored: IntCounter,
    pub ledger_refused: IntCounter,
    pub epochs_void: IntCounter,
    pub ledger_claims: IntCounter,
    pub epoch_size: Histogram,
    pub seal_duration: Histogram,
    pub clickhouse_write: Histogram,
    pub ledger_commit: Histogram,
    pub pending_epochs: IntGauge,
    pub lag: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn seconds(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("metric")
}

impl Metrics {
    pub fn new() -> Self {
        let latency = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let m = Metrics {
            registry: Registry::new(),
            consumed: IntCounter::new(
                "sealtrail_sealer_consumed_records_total",
                "Records read from scan-events",
            )
            .expect("metric"),
            sealed: IntCounter::new(
                "sealtrail_sealer_sealed_events_total",
                "Events written to ClickHouse in a sealed epoch",
            )
            .expect("metric"),
            dlq: IntCounterVec::new(
                Opts::new(
                    "sealtrail_sealer_dlq_records_total",
                    "Records not sealed as events, sent to the dead-letter topic, by reason",
                ),
                &["reason"],
            )
            .expect("metric"),
            seen_lookups: IntCounter::new(
                "sealtrail_sealer_seen_lookups_total",
                "Event ids the sealed-id filter could not rule out, looked up in ClickHouse",
            )
            .expect("metric"),
            gate_duration: seconds(
                "sealtrail_sealer_gate_seconds",
                "Time an epoch spends in the gate (decoding, rules, signatures, sealed-id check)",
                latency.clone(),
            ),
            epochs_sealed: IntCounter::new(
                "sealtrail_sealer_sealed_epochs_total",
                "Epochs written to ClickHouse",
            )
            .expect("metric"),
            epochs_anchored: IntCounter::new(
                "sealtrail_sealer_anchored_epochs_total",
                "Epoch roots committed to the ledger",
            )
            .expect("metric"),
            ledger_refused: IntCounter::new(
                "sealtrail_sealer_ledger_refused_total",
                "Commits the ledger refused (a different root already committed)",
            )
            .expect("metric"),
            epochs_void: IntCounter::new(
                "sealtrail_sealer_void_epochs_total",
                "Epochs the ledger fenced: sealed under a claim another sealer has replaced",
            )
            .expect("metric"),
            ledger_claims: IntCounter::new(
                "sealtrail_sealer_ledger_claims_total",
                "Partition claims made on the ledger (one per assignment)",
            )
            .expect("metric"),
            epoch_size: Histogram::with_opts(
                HistogramOpts::new("sealtrail_sealer_epoch_events", "Events per sealed epoch")
                    .buckets(prometheus::exponential_buckets(1.0, 4.0, 11).expect("buckets")),
            )
            .expect("metric"),
            seal_duration: seconds(
                "sealtrail_sealer_seal_duration_seconds",
                "Decode, hash, tree and proofs of one epoch",
                latency.clone(),
            ),
            clickhouse_write: seconds(
                "sealtrail_sealer_clickhouse_write_seconds",
                "Writing one epoch's events and epoch row",
                latency.clone(),
            ),
            ledger_commit: seconds(
                "sealtrail_sealer_ledger_commit_seconds",
                "Committing one root until its receipt",
                latency,
            ),
            pending_epochs: IntGauge::new(
                "sealtrail_sealer_pending_epochs",
                "Epochs sealed in ClickHouse, root not yet on the ledger",
            )
            .expect("metric"),
            lag: IntGaugeVec::new(
                Opts::new(
                    "sealtrail_sealer_consumer_lag_records",
                    "Records on the topic not yet sealed, per partition",
                ),
                &["partition"],
            )
            .expect("metric"),
        };
        for c in [
            &m.consumed,
            &m.sealed,
            &m.seen_lookups,
            &m.epochs_sealed,
            &m.epochs_anchored,
            &m.ledger_refused,
            &m.epochs_void,
            &m.ledger_claims,
        ] {
            m.registry.register(Box::new(c.clone())).expect("register");
        }
        for h in [
            &m.epoch_size,
            &m.seal_duration,
            &m.clickhouse_write,
            &m.ledger_commit,
            &m.gate_duration,
        ] {
            m.registry.register(Box::new(h.clone())).expect("register");
        }
        m.registry
            .register(Box::new(m.dlq.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.pending_epochs.clone()))
            .expect("register");
        m.registry
            .register(Box::new(m.lag.clone()))
            .expect("register");
        m
    }

    pub fn render(&self) -> Vec<u8> {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode metrics");
        buf
    }
}
