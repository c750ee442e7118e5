//! The EPCIS query's reads: sealed events chosen by the binding's common
//! parameters (some items, business steps, locations, a time range), a page
//! at a time in the trail's order, each with its epoch and proof. Events are
//! found by the object they are filed under, the table's sort key, and by the
//! indexes of the others they list (`events_by_epc`, and `memberships` for
//! packed children): a query names its objects, so it reads their granules,
//! never the table. The
//! columns only choose rows: what a reader shows comes from each row's payload,
//! which the caller checks against the same filter (`EventFilter::admits`), so
//! a column changed in ClickHouse cannot put an event in an answer it does not
//! belong to.

use schemas::leaf::LeafEvent;

use crate::tiles;
use crate::trail::{bind_after, prove, step_query, Cursor, StepRow, AFTER, PAGE_MAX};

/// What events a query asks for; every list that is not empty must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Events that list one of these as their parent, an EPC, an input or
    /// output, or a child (`MATCH_anyEPC`, `MATCH_epc`); without any (and
    /// without parents), `events` reads nothing (it would read the table).
    pub any_item: Vec<String>,
    /// Business steps, as the Avro symbols (`EQ_bizStep`).
    pub biz_steps: Vec<String>,
    /// Business locations (`EQ_bizLocation`).
    pub biz_locations: Vec<String>,
    /// Actions, as the Avro symbols (`EQ_action`).
    pub actions: Vec<String>,
    /// Dispositions, as the Avro symbols (`EQ_disposition`).
    pub dispositions: Vec<String>,
    /// Read points (`EQ_readPoint`).
    pub read_points: Vec<String>,
    /// Event time at or after, ms since the Unix epoch (`GE_eventTime`).
    pub from_ms: Option<i64>,
    /// Event time before, ms since the Unix epoch (`LT_eventTime`).
    pub until_ms: Option<i64>,
    /// Event types (`eventType`).
    pub event_types: Vec<String>,
    /// Parents (`MATCH_parentID`): events are filed under their parent, so
    /// these are looked up by the sort key too.
    pub parents: Vec<String>,
}

impl EventFilter {
    /// Whether a decoded event matches, by its signed fields alone.
    pub fn admits(&self, e: &LeafEvent) -> bool {
        let one_of = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        let m = e.summary();
        let text = |k: &str| m.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let time = e.event_time();
        let key = e.key();
        (self.any_item.iter().any(|i| e.lists(i)) || self.parents.iter().any(|p| p == key))
            && one_of(&self.parents, text("parent_id"))
            && one_of(&self.event_types, text("event_type"))
            && one_of(&self.biz_steps, text("biz_step"))
            && one_of(&self.biz_locations, text("biz_location"))
            && one_of(&self.actions, text("action"))
            && one_of(&self.dispositions, text("disposition"))
            && one_of(&self.read_points, text("read_point"))
            && self.from_ms.is_none_or(|t| time >= t)
            && self.until_ms.is_none_or(|t| time < t)
    }

    /// The items rows are looked up by: the EPCs asked for and the parents.
    fn keys(&self) -> Vec<&String> {
        self.any_item.iter().chain(&self.parents).collect()
    }
}

/// One page of the events `filter` selects, in the order of (time, event id,
/// epoch, leaf), after `after`: at most `limit` (up to `PAGE_MAX`), and where
/// the next page starts if there is one.
pub async fn events(
    client: &clickhouse::Client,
    cache: Option<&tiles::TileCache>,
    filter: &EventFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> clickhouse::error::Result<(Vec<StepRow>, Option<Cursor>)> {
    let limit = limit.clamp(1, PAGE_MAX);
    let keys = filter.keys();
    if keys.is_empty() {
        return Ok((Vec::new(), None));
    }
    // One placeholder per item: ClickHouse's index reads `IN (…)`, not arrays.
    let items = vec!["?"; keys.len()].join(", ");
    let epcs = vec!["?"; filter.any_item.len()].join(", ");
    // Filed under one of them, or listing one beside another (`admits` checks
    // that the payload does): each index's rows point at events by key and id.
    let listed = |index: &str, column: &str| {
        format!(
            " OR (item_id IN (SELECT item_id FROM {index} WHERE {column} IN ({epcs})) \
             AND event_id IN (SELECT event_id FROM {index} WHERE {column} IN ({epcs})))"
        )
    };
    let mut found = format!("item_id IN ({items})");
    if !filter.any_item.is_empty() {
        found.push_str(&listed("events_by_epc", "epc"));
        found.push_str(&listed("memberships", "child"));
    }
    let mut conditions = vec![format!("({found})")];
    // Each list that is not empty, with its column: bound in this order below.
    let lists = [
        (&filter.parents, "parent_id"),
        (&filter.event_types, "event_type"),
        (&filter.biz_steps, "biz_step"),
        (&filter.biz_locations, "biz_location"),
        (&filter.actions, "action"),
        (&filter.dispositions, "disposition"),
        (&filter.read_points, "read_point"),
    ];
    for (values, column) in &lists {
        if !values.is_empty() {
            conditions.push(format!("has(?, {column})"));
        }
    }
    if filter.from_ms.is_some() {
        conditions.push("event_time_ms >= ?".into());
    }
    if filter.until_ms.is_some() {
        conditions.push("event_time_ms < ?".into());
    }
    if after.is_some() {
        conditions.push(AFTER.into());
    }
    let rows = format!("PREWHERE {}", conditions.join(" AND "));
    let mut query = client.query(&format!(
        "{} ORDER BY event_time_ms, event_id, epoch_id, leaf_index LIMIT ?",
        step_query(&rows)
    ));
    // The PREWHERE is in the text twice (see `step_query`): its values too.
    for _ in 0..2 {
        for item in &keys {
            query = query.bind(item);
        }
        // Two indexes, two subqueries each.
        if !filter.any_item.is_empty() {
            for _ in 0..4 {
                for epc in &filter.any_item {
                    query = query.bind(epc);
                }
            }
        }
        for (values, _) in &lists {
            if !values.is_empty() {
                query = query.bind(*values);
            }
        }
        if let Some(t) = filter.from_ms {
            query = query.bind(t);
        }
        if let Some(t) = filter.until_ms {
            query = query.bind(t);
        }
        if let Some(c) = after {
            query = bind_after(query, c);
        }
    }
    let mut rows = query.bind(limit as u64 + 1).fetch_all::<StepRow>().await?;
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        Cursor::after(rows.last().expect("limit is at least 1"))
    });
    prove(client, cache, &mut rows).await?;
    Ok((rows, next))
}
