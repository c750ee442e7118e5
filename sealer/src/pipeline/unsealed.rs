//! The unsealed benchmark's writing stage (feature `bench`): rows, then Kafka
//! offsets; no tree, epoch row or ledger. It measures what sealing costs
//! against plain ingestion (benches/e2e).

use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::consume::Rebalancing;
use super::Context;
use crate::epoch::SealedEpoch;
use crate::retry::{self, Stopped};
use crate::store::epochs as store;

pub async fn write(
    ctx: &Context,
    consumer: &BaseConsumer<Rebalancing>,
    database: &str,
    epoch: SealedEpoch,
) -> Result<(), Stopped> {
    let started = Instant::now();
    let client = ctx.clickhouse.clone().with_database(database);
    let written = retry::until_done(&ctx.cancel, "writing unsealed rows", || {
        store::insert_events(&client, &epoch.rows)
    })
    .await;
    ctx.shared.finished_one();
    written?;
    ctx.metrics
        .clickhouse_write
        .observe(started.elapsed().as_secs_f64());
    let mut tpl = TopicPartitionList::new();
    for r in &epoch.ranges {
        let _ =
            tpl.add_partition_offset(&ctx.settings.topic, r.partition, Offset::Offset(r.last + 1));
    }
    let _ = consumer.commit(&tpl, CommitMode::Async);
    ctx.shared.sealed_through(&epoch.ranges);
    ctx.metrics.sealed.inc_by(epoch.rows.len() as u64);
    Ok(())
}
