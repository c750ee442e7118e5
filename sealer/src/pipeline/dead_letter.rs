//! Dead letters, the first thing the writing stage does with an epoch: every
//! record the gate refused goes to the dead-letter topic with the reason and its
//! origin in headers, before the epoch's rows are written (so a restart that
//! re-reads the window refuses and dead-letters them again, never loses them).

use std::collections::BTreeMap;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sha2::{Digest, Sha256};

use super::Context;
use crate::epoch::{self, SealedEpoch};
use crate::retry::{self, Stopped};

/// Longest error sentence put in a dead letter's header: refusals may quote the
/// bad value, which an attacker chooses.
const MAX_ERROR_HEADER: usize = 256;

/// The refusal as a header: at most `MAX_ERROR_HEADER` bytes, cut on a
/// character boundary and marked as cut.
fn header_text(mut error: String) -> String {
    if error.len() > MAX_ERROR_HEADER {
        let mut cut = MAX_ERROR_HEADER;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
        error.push('…');
    }
    error
}

/// One dead letter: the record as it came, or, when Kafka will not take it
/// (too large with its headers), only its length and SHA-256.
fn record<'a>(
    topic: &'a str,
    r: &'a epoch::Rejected,
    error: &'a str,
    position: &'a (String, String),
    digest: Option<&'a (String, String)>,
) -> FutureRecord<'a, (), [u8]> {
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: "sealtrail-reason",
            value: Some(r.refusal.reason()),
        })
        .insert(Header {
            key: "sealtrail-error",
            value: Some(error),
        })
        .insert(Header {
            key: "sealtrail-source-partition",
            value: Some(&position.0),
        })
        .insert(Header {
            key: "sealtrail-source-offset",
            value: Some(&position.1),
        });
    let payload: &[u8] = match digest {
        None => &r.record.value,
        Some((bytes, sha256)) => {
            headers = headers
                .insert(Header {
                    key: "sealtrail-value-bytes",
                    value: Some(bytes),
                })
                .insert(Header {
                    key: "sealtrail-value-sha256",
                    value: Some(sha256),
                });
            &[]
        }
    };
    FutureRecord::to(topic).payload(payload).headers(headers)
}

/// Sends every rejected record of an epoch to the dead-letter topic, all in
/// flight at once, with the reason and its origin in headers, and waits until
/// Kafka has them all. Only what Kafka could not take yet is sent again; a record
/// Kafka refuses for its size goes as its digest, so no record can stop sealing.
pub async fn send(
    ctx: &Context,
    dlq: &FutureProducer,
    sealed: &SealedEpoch,
) -> Result<(), Stopped> {
    let (topic, metrics) = (ctx.settings.dlq_topic.as_str(), &ctx.metrics);

    let letters: Vec<(String, (String, String))> = sealed
        .rejected
        .iter()
        .map(|r| {
            let error = header_text(r.refusal.to_string());
            let position = (r.record.partition.to_string(), r.record.offset.to_string());
            (error, position)
        })
        .collect();
    if !sealed.rejected.is_empty() {
        let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &sealed.rejected {
            *by_reason.entry(r.refusal.reason()).or_default() += 1;
        }
        tracing::warn!(
            epoch = sealed.epoch_id,
            ?by_reason,
            "records refused; sending them to the dead-letter topic"
        );
    }
    let mut digests: Vec<Option<(String, String)>> = vec![None; letters.len()];
    let mut todo: Vec<usize> = (0..letters.len()).collect();
    let mut delays = retry::Delays::new();
    while !todo.is_empty() {
        let mut deliveries = Vec::with_capacity(todo.len());
        for &i in &todo {
            let r = &sealed.rejected[i];
            let record = record(topic, r, &letters[i].0, &letters[i].1, digests[i].as_ref());
            deliveries.push((i, dlq.send_result(record).map_err(|(e, _)| e)));
        }
        let mut again = Vec::new();
        let mut last_error = None;
        for (i, delivery) in deliveries {
            let outcome = match delivery {
                Ok(d) => match d.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(e),
                    Err(_) => Err(KafkaError::Canceled),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    let r = &sealed.rejected[i];
                    metrics.dlq.with_label_values(&[r.refusal.reason()]).inc();
                    // One line per record only at debug: whoever can produce
                    // records could otherwise flood the log.
                    tracing::debug!(partition = %letters[i].1.0, offset = %letters[i].1.1, reason = r.refusal.reason(), error = %letters[i].0, "record sent to the dead-letter topic");
                }
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge))
                    if digests[i].is_none() =>
                {
                    let value = &sealed.rejected[i].record.value;
                    digests[i] =
                        Some((value.len().to_string(), hex::encode(Sha256::digest(value))));
                    again.push(i);
                }
                Err(e) => {
                    last_error = Some(e);
                    again.push(i);
                }
            }
        }
        if let Some(e) = last_error.take() {
            tracing::warn!(error = %e, waiting = again.len(), "dead-lettering records; retrying");
        }
        if !again.is_empty() {
            if ctx.cancel.is_cancelled() {
                tracing::warn!(
                    waiting = again.len(),
                    "stopping with records not dead-lettered; the next run reads them again"
                );
                return Err(Stopped);
            }
            delays.wait(&ctx.cancel).await?;
        } else {
            delays.reset();
        }
        todo = again;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_quoting_long_values_are_cut_on_a_character_boundary() {
        assert_eq!(header_text("short".into()), "short");
        let exact = "x".repeat(MAX_ERROR_HEADER);
        assert_eq!(header_text(exact.clone()), exact);
        // 'é' is two bytes: a cut at 256 would fall inside one.
        let long = format!("x{}", "é".repeat(300));
        let cut = header_text(long);
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= MAX_ERROR_HEADER + '…'.len_utf8());
        assert_eq!(cut.trim_end_matches('…').len(), MAX_ERROR_HEADER - 1);
    }
}
