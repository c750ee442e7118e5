//! The lag gauge, on a thread of its own: records on the topic not yet sealed,
//! per partition this sealer reads.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::Context;

/// Every second: records on the topic not yet sealed, per partition.
pub fn run(ctx: &Context, config: ClientConfig) {
    let (shared, metrics) = (&ctx.shared, &ctx.metrics);
    let Ok(probe) = config.create::<BaseConsumer>() else {
        return;
    };
    // Lag is what is on the topic and not sealed yet: what a restart would redo
    // and what the next epochs have to absorb.
    while !ctx.cancel.is_cancelled() {
        let partitions: Vec<i32> = shared
            .positions
            .lock()
            .expect("lock")
            .keys()
            .copied()
            .collect();
        for p in partitions {
            let sealed = shared.sealed_to.lock().expect("lock").get(&p).copied();
            if let Ok((low, high)) =
                probe.fetch_watermarks(&ctx.settings.topic, p, Duration::from_secs(2))
            {
                let next = sealed.map_or(low, |s| (s + 1).max(low));
                metrics
                    .lag
                    .with_label_values(&[&p.to_string()])
                    .set((high - next).max(0));
            }
        }
        for _ in 0..10 {
            if ctx.cancel.is_cancelled() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
