//! An item's trail through its containers: items packed into cases, cases onto
//! pallets, pallets into a container, each scanned as a unit. The item's own
//! trail holds only events filed under it; this finds the AggregationEvents
//! that packed it (`memberships` points at them), checks each, and from the
//! verified ones works out when it was inside what: from the ADD that packed
//! it to the DELETE that unpacked it (or one that emptied the container), at
//! any depth. The container's steps in that time belong to the item's trail,
//! each verified as any step is and marked with the container.
//!
//! Only what verifies is followed: a packing added to the store, or one whose
//! payload does not list the item, moves nothing into the trail. A packing
//! counts from when it was sealed, not from the time it claims: a container
//! step sealed before it (`SKEW_MS` allowed) is not the item's, so a device
//! cannot date a packing back to pull a container's past into a trail.
//! Packings are claims by their signer, shown with it: who may make them is
//! the device registry's decision.

use std::collections::{BTreeMap, HashSet, VecDeque};

use schemas::epcis_event::EventType;
use schemas::Action;

use sealer::epoch::sealed_at_ms;

use crate::store::trail::{item_window, packings, StepRow};
use crate::trail::{TileCache, Verifier};
use sealer::verify::Verdict;

/// How deep packings are followed (case, pallet, container, ... ) and how many
/// container stays one trail reads: bounds on what one trail costs.
pub const MAX_DEPTH: usize = 8;
pub const MAX_STAYS: usize = 16;

/// How much earlier than its packing a container step may be sealed and still
/// count: the events of one capture can land in neighbouring epochs.
pub const SKEW_MS: i64 = 60_000;

/// A time an object spent inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stay {
    pub container: String,
    pub from_ms: i64,
    /// None while it is still inside.
    pub until_ms: Option<i64>,
    /// When the packing that began it was sealed.
    pub sealed_ms: i64,
}

/// A verified packing or unpacking: its time, container, action, and when it
/// was sealed.
pub type Move = (i64, String, Action, i64);

/// The stays that verified packings give, within `[lo, hi]` (the time the
/// object itself was where it was looked for). Per container in time order:
/// an ADD packs (a second ADD while inside changes nothing), a DELETE unpacks,
/// an OBSERVE changes nothing.
pub fn stays(moves: &[Move], lo: i64, hi: Option<i64>) -> Vec<Stay> {
    let mut moves: Vec<&Move> = moves.iter().collect();
    moves.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut inside: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut out = Vec::new();
    for (t, container, action, sealed) in moves {
        match action {
            Action::Add => {
                inside.entry(container).or_insert((*t, *sealed));
            }
            Action::Delete => {
                if let Some((from, sealed_ms)) = inside.remove(container.as_str()) {
                    out.push(Stay {
                        container: container.clone(),
                        from_ms: from,
                        until_ms: Some(*t),
                        sealed_ms,
                    });
                }
            }
            Action::Observe => {}
        }
    }
    out.extend(inside.into_iter().map(|(c, (from, sealed_ms))| Stay {
        container: c.to_string(),
        from_ms: from,
        until_ms: None,
        sealed_ms,
    }));
    out.into_iter()
        .filter_map(|s| {
            let from = s.from_ms.max(lo);
            let until = match (s.until_ms, hi) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (until.is_none_or(|u| from <= u)).then_some(Stay {
                from_ms: from,
                until_ms: until,
                ..s
            })
        })
        .collect()
}

/// A step of an item's trail that is a container's.
pub struct ContainerStep {
    pub row: StepRow,
    /// The container the item was in (for a packing, the one it went into
    /// or out of).
    pub container: String,
    /// The AggregationEvent that packed or unpacked the item, not a step of
    /// the container while it was inside.
    pub packing: bool,
    /// Its check, done once.
    pub verdict: Verdict,
}

/// Every container step of `item`'s trail, packings first then by container,
/// each row once.
pub async fn container_steps(
    client: &clickhouse::Client,
    cache: Option<&TileCache>,
    v: &Verifier,
    item: &str,
) -> anyhow::Result<Vec<ContainerStep>> {
    let mut out = Vec::new();
    let mut shown: HashSet<(u64, u32)> = HashSet::new();
    let mut followed: HashSet<(String, i64)> = HashSet::new();
    let mut queue = VecDeque::from([(item.to_string(), i64::MIN, None, 0usize)]);
    let mut read = 0;
    while let Some((object, lo, hi, depth)) = queue.pop_front() {
        if depth >= MAX_DEPTH {
            continue;
        }
        let mut moves = Vec::new();
        for row in packings(client, cache, &object).await? {
            let verdict = v.check(&row).await?;
            let Some((_, f)) = verdict.event.as_ref().and_then(|e| e.as_epcis()) else {
                continue;
            };
            // What the payload says, not the store's pointer.
            if f.kind != EventType::Aggregation || !f.child_epcs.contains(&object) {
                continue;
            }
            let in_time = f.event_time >= lo && hi.is_none_or(|h| f.event_time <= h);
            if let (true, Some(action)) = (verdict.verified(), f.action) {
                moves.push((
                    f.event_time,
                    f.parent_id.clone(),
                    action,
                    sealed_at_ms(row.epoch_id),
                ));
            }
            if in_time && shown.insert((row.epoch_id, row.leaf_index)) {
                out.push(ContainerStep {
                    container: f.parent_id.clone(),
                    packing: true,
                    row,
                    verdict: verdict.clone(),
                });
            }
        }
        for stay in stays(&moves, lo, hi) {
            if read >= MAX_STAYS {
                break;
            }
            read += 1;
            let rows =
                item_window(client, cache, &stay.container, stay.from_ms, stay.until_ms).await?;
            let mut until = stay.until_ms;
            for row in rows {
                if until.is_some_and(|u| row.event_time_ms > u) {
                    break;
                }
                if sealed_at_ms(row.epoch_id) < stay.sealed_ms - SKEW_MS {
                    continue;
                }
                // A verified DELETE without children empties the container.
                let verdict = v.check(&row).await?;
                if let Some((_, f)) = verdict.event.as_ref().and_then(|e| e.as_epcis()) {
                    if verdict.verified()
                        && f.kind == EventType::Aggregation
                        && f.action == Some(Action::Delete)
                        && f.child_epcs.is_empty()
                        && f.event_time > stay.from_ms
                    {
                        until = Some(f.event_time);
                    }
                }
                if shown.insert((row.epoch_id, row.leaf_index)) {
                    out.push(ContainerStep {
                        container: stay.container.clone(),
                        packing: false,
                        row,
                        verdict,
                    });
                }
            }
            if followed.insert((stay.container.clone(), stay.from_ms)) {
                queue.push_back((stay.container, stay.from_ms, until, depth + 1));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: i64, c: &str, a: Action) -> Move {
        (t, c.to_string(), a, 1000 + t)
    }

    #[test]
    fn stays_run_from_packing_to_unpacking() {
        let moves = [
            m(10, "case-1", Action::Add),
            m(15, "case-1", Action::Observe),
            m(20, "case-1", Action::Add),
            m(30, "case-1", Action::Delete),
            m(40, "case-2", Action::Add),
            // An unpacking from where it never was changes nothing.
            m(45, "case-3", Action::Delete),
        ];
        assert_eq!(
            stays(&moves, i64::MIN, None),
            vec![
                Stay {
                    container: "case-1".into(),
                    from_ms: 10,
                    sealed_ms: 1010,
                    until_ms: Some(30)
                },
                Stay {
                    container: "case-2".into(),
                    from_ms: 40,
                    sealed_ms: 1040,
                    until_ms: None
                },
            ]
        );
        // Within the time the case itself was on a pallet.
        assert_eq!(
            stays(&moves, 25, Some(42)),
            vec![
                Stay {
                    container: "case-1".into(),
                    from_ms: 25,
                    sealed_ms: 1010,
                    until_ms: Some(30)
                },
                Stay {
                    container: "case-2".into(),
                    from_ms: 40,
                    sealed_ms: 1040,
                    until_ms: Some(42)
                },
            ]
        );
        // Outside it: nothing.
        assert_eq!(
            stays(&moves, 50, Some(60)).len(),
            1,
            "only case-2, still open"
        );
        assert!(stays(&moves[..4], 31, Some(60)).is_empty());
    }
}
