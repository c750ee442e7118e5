//! The read side's queries: an event's or an item's sealed rows with their
//! epoch and inclusion proof, for every reader (`sealer verify`, `sealer
//! trail`, the trail API). The proof is the row's own when it was sealed with
//! one (before trees were stored in tiles), else read from its epoch's tiles.
//! Only rows whose epoch has a row in `epochs`, not void, are read: rows of an
//! interrupted epoch, or of one the ledger fenced, were sealed again under
//! another epoch (ARCHITECTURE.md).

use clickhouse::Row;
use serde::Deserialize;
use verifier::proof::{self, Hash};
use verifier::tile::{self, TileId};
use verifier::verify;

use crate::tiles;

/// One sealed event with its epoch, as every reader needs it. The columns
/// beside the payload are only compared with it (`columns`), never shown.
#[derive(Row, Deserialize, Debug, Clone)]
pub struct StepRow {
    pub event_id: String,
    pub item_id: String,
    pub item_ids: Vec<String>,
    pub event_time: u32,
    pub event_time_ms: i64,
    pub event_timezone_offset: String,
    pub action: String,
    pub biz_step: String,
    pub disposition: String,
    pub read_point: String,
    pub biz_location: String,
    pub country: String,
    pub biz_transaction_types: Vec<String>,
    pub biz_transaction_ids: Vec<String>,
    pub temperature_c: Option<f32>,
    pub relative_humidity_pct: Option<f32>,
    pub device_id: String,
    pub event_type: String,
    pub parent_id: String,
    pub child_epcs: Vec<String>,
    pub quantity_classes: Vec<String>,
    pub quantities: Vec<f64>,
    pub quantity_uoms: Vec<String>,
    pub sensor_types: Vec<String>,
    pub sensor_values: Vec<f64>,
    pub event_hash: String,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub leaf_hash: Hash,
    pub epoch_id: u64,
    pub leaf_index: u32,
    /// The row's own proof (rows sealed before tiles), else the one `prove`
    /// reads from the tiles.
    pub proof: Vec<Hash>,
    pub epoch_root: Hash,
    pub epoch_size: u32,
    pub epoch_status: i8,
    pub ledger_tx: String,
    pub ledger_block: u64,
}

impl StepRow {
    /// The columns, for comparison with the payload.
    pub fn columns(&self) -> verify::Columns<'_> {
        verifier::columns_of!(self)
    }

    /// The device the payload names (the column's only if it does not decode,
    /// and then the payload check fails anyway).
    pub fn signer(&self) -> String {
        schemas::leaf::signer(&self.payload).unwrap_or_else(|| self.device_id.clone())
    }
}

/// Gives every row without a proof of its own the one its epoch's tiles hold,
/// all read in one query. Where a tile is stored more than once with
/// different contents, the copies that make the proof fold to the epoch's
/// root are taken. A row whose tiles are missing or short keeps an empty
/// proof, which no verifier accepts for a tree of two leaves or more: the
/// readers report it as a bad proof. The tiles come from `cache` when there
/// is one.
pub async fn prove(
    client: &clickhouse::Client,
    cache: Option<&tiles::TileCache>,
    rows: &mut [StepRow],
) -> clickhouse::error::Result<()> {
    let place = |r: &StepRow| (r.epoch_id, u64::from(r.leaf_index), u64::from(r.epoch_size));
    let mut wanted: Vec<(u64, TileId)> = rows
        .iter()
        .filter(|r| r.proof.is_empty())
        .flat_map(|r| {
            let (epoch, index, size) = place(r);
            tile::tiles_for(index, size)
                .into_iter()
                .map(move |id| (epoch, id))
        })
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let stored = match cache {
        Some(cache) => cache.fetch(client, &wanted).await?,
        None => tiles::fetch(client, &wanted).await?,
    };
    for r in rows.iter_mut().filter(|r| r.proof.is_empty()) {
        let (epoch, index, size) = place(r);
        let leaf = proof::leaf_hash(&r.payload);
        let ids = tile::tiles_for(index, size);
        // Each choice of one copy per tile, the first copies first: one
        // choice but where copies differ, at most COPIES^4 (a proof of a
        // UInt32-sized tree reads at most 4 tiles).
        let copies: Vec<usize> = ids
            .iter()
            .map(|id| stored.get(&(epoch, *id)).map_or(1, Vec::len))
            .collect();
        let choices: usize = copies.iter().product();
        let mut first: Option<Result<Vec<Hash>, tile::TileError>> = None;
        for mut n in 0..choices {
            let pick: Vec<usize> = copies
                .iter()
                .map(|&c| {
                    let p = n % c;
                    n /= c;
                    p
                })
                .collect();
            let read = tile::proof_from(index, size, |id| {
                let at = ids.iter().position(|i| *i == id)?;
                stored.get(&(epoch, id))?.get(pick[at])
            });
            let folds = read
                .as_ref()
                .is_ok_and(|p| proof::fold(&leaf, index, size, p) == Some(r.epoch_root));
            if folds {
                first = Some(read);
                break;
            }
            first.get_or_insert(read);
        }
        match first {
            Some(Ok(p)) => r.proof = p,
            Some(Err(e)) => {
                tracing::warn!(epoch, leaf = index, error = %e, "no proof in the stored tree")
            }
            None => {}
        }
    }
    Ok(())
}

/// The rows `rows` (a PREWHERE over `scan_events`) selects, with their epoch.
/// Only the epochs of rows `rows` selects are read from `epochs`: joining the
/// whole table (a row a second, for ever) would grow every trail's cost, and
/// the API's memory limit would stop it one day. `rows` is in the text twice,
/// so its parameters are bound twice.
pub(crate) fn step_query(rows: &str) -> String {
    format!(
        "\
SELECT event_id, item_id, item_ids, event_time, event_time_ms, event_timezone_offset,
       toString(action) AS action, toString(biz_step) AS biz_step,
       toString(disposition) AS disposition, read_point, biz_location, country,
       arrayMap(t -> toString(t), biz_transaction_types) AS biz_transaction_types,
       biz_transaction_ids, temperature_c, relative_humidity_pct, device_id,
       event_type, parent_id, child_epcs, quantity_classes, quantities, quantity_uoms, sensor_types, sensor_values, event_hash, payload, leaf_hash,
       epoch_id, leaf_index, proof, epoch_root, epoch_size, epoch_status, ledger_tx, ledger_block
FROM scan_events
ANY INNER JOIN
(
    SELECT epoch_id, argMax(root, version) AS epoch_root, argMax(leaf_count, version) AS epoch_size,
           argMax(status, version) AS epoch_status, argMax(ledger_tx, version) AS ledger_tx,
           argMax(ledger_block, version) AS ledger_block
    FROM epochs
    WHERE epoch_id IN (SELECT epoch_id FROM scan_events {rows})
    GROUP BY epoch_id HAVING epoch_status != 'void'
) USING epoch_id
{rows}"
    )
}

/// One event by id: events_by_id gives its item, and the item's rows are few.
/// Its proof's tiles come from `cache` when there is one.
pub async fn event_row(
    client: &clickhouse::Client,
    cache: Option<&tiles::TileCache>,
    event_id: &str,
) -> clickhouse::error::Result<Option<StepRow>> {
    let rows = "PREWHERE item_id IN \
                (SELECT item_id FROM events_by_id WHERE event_id = ?) \
                AND event_id = ?";
    let mut row = client
        .query(&format!("{} LIMIT 1", step_query(rows)))
        .bind(event_id)
        .bind(event_id)
        .bind(event_id)
        .bind(event_id)
        .fetch_optional::<StepRow>()
        .await?;
    if let Some(r) = row.as_mut() {
        prove(client, cache, std::slice::from_mut(r)).await?;
    }
    Ok(row)
}

/// Where a page of an item's trail ends: the last step's place in the order of
/// `item_page` (time, event id, epoch, leaf), which is unique even for rows
/// that share a time and an id. Written `<time_ms>,<epoch_id>,<leaf_index>,<event_id>`,
/// the event id last so that a comma in it changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time_ms: i64,
    pub epoch_id: u64,
    pub leaf_index: u64,
    pub event_id: String,
}

impl Cursor {
    pub fn after(row: &StepRow) -> Cursor {
        Cursor {
            time_ms: row.event_time_ms,
            epoch_id: row.epoch_id,
            leaf_index: row.leaf_index as u64,
            event_id: row.event_id.clone(),
        }
    }

    pub fn parse(text: &str) -> Result<Cursor, String> {
        let shape =
            "not '<event_time_ms>,<epoch_id>,<leaf_index>,<event_id>' (the `next` of a page)";
        let mut parts = text.splitn(4, ',');
        let mut number = |what: &str| -> Result<&str, String> {
            parts
                .next()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| format!("{shape}: no {what}"))
        };
        let (time, epoch, leaf) = (number("time")?, number("epoch")?, number("leaf")?);
        let event_id = parts.next().unwrap_or("");
        let bad = |what: &str, v: &str| {
            format!(
                "{what} '{}' is not a number",
                v.chars().take(24).collect::<String>()
            )
        };
        if event_id.is_empty() || event_id.len() > 1024 {
            return Err(format!("{shape}: the event id is empty or over 1024 bytes"));
        }
        Ok(Cursor {
            time_ms: time.parse().map_err(|_| bad("the time", time))?,
            epoch_id: epoch.parse().map_err(|_| bad("the epoch", epoch))?,
            leaf_index: leaf.parse().map_err(|_| bad("the leaf index", leaf))?,
            event_id: event_id.to_string(),
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.time_ms, self.epoch_id, self.leaf_index, self.event_id
        )
    }
}

/// The rows after a cursor, in the order of (time, event id, epoch, leaf):
/// its values go in with `bind_after`.
pub(crate) const AFTER: &str = "(event_time_ms > ? OR (event_time_ms = ? AND (event_id > ? \
     OR (event_id = ? AND (epoch_id > ? OR (epoch_id = ? AND leaf_index > ?))))))";

pub(crate) fn bind_after(q: clickhouse::query::Query, c: &Cursor) -> clickhouse::query::Query {
    q.bind(c.time_ms)
        .bind(c.time_ms)
        .bind(&c.event_id)
        .bind(&c.event_id)
        .bind(c.epoch_id)
        .bind(c.epoch_id)
        .bind(c.leaf_index)
}

/// The most steps one page of a trail holds: a page is read, checked and
/// answered whole, so its size bounds what one request costs.
pub const PAGE_MAX: usize = 200;

/// One page of an item's steps in time order, after `after`: the events filed
/// under `item_id` (the sort key of `scan_events`) and those `events_by_epc`
/// says list it beside another, at most `limit`, and the cursor of the next
/// page if there are more. The index only points: the caller keeps such an
/// event only if its payload lists the item. PREWHERE, not WHERE:
/// ClickHouse then reads payloads and proofs only for the matching rows, not
/// for whole granules, which halved the API's latency.
pub async fn item_page(
    client: &clickhouse::Client,
    cache: Option<&tiles::TileCache>,
    item_id: &str,
    after: Option<&Cursor>,
    limit: usize,
) -> clickhouse::error::Result<(Vec<StepRow>, Option<Cursor>)> {
    let limit = limit.clamp(1, PAGE_MAX);
    let start = Cursor {
        time_ms: i64::MIN,
        epoch_id: 0,
        leaf_index: 0,
        event_id: String::new(),
    };
    let c = after.unwrap_or(&start);
    let query = client
        .query(&format!(
            "{} WHERE {AFTER} ORDER BY event_time_ms, event_id, epoch_id, leaf_index LIMIT ?",
            step_query(&format!("PREWHERE {LISTING}"))
        ))
        .bind(item_id)
        .bind(item_id)
        .bind(item_id)
        .bind(item_id)
        .bind(item_id)
        .bind(item_id);
    let mut rows = bind_after(query, c)
        .bind(limit as u64 + 1)
        .fetch_all::<StepRow>()
        .await?;
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        Cursor::after(rows.last().expect("limit is at least 1"))
    });
    prove(client, cache, &mut rows).await?;
    Ok((rows, next))
}

/// The rows of events filed under an object (`?`) or listing it beside the
/// one they are filed under (`?`, `?`): three bindings of the object.
const LISTING: &str =
    "(item_id = ? OR (item_id IN (SELECT item_id FROM events_by_epc WHERE epc = ?) \
     AND event_id IN (SELECT event_id FROM events_by_epc WHERE epc = ?)))";

/// The most packings of one object a trail follows, and the most steps read
/// of one container's time inside it: bounds on what one trail costs.
pub const PACKINGS_MAX: usize = 32;

/// Whether `memberships` names `object` as a child at all: one look at the
/// sort key, so a trail of something never packed costs no more.
pub async fn packed(client: &clickhouse::Client, object: &str) -> clickhouse::error::Result<bool> {
    let n: u64 = client
        .query("SELECT count() FROM memberships WHERE child = ?")
        .bind(object)
        .fetch_one()
        .await?;
    Ok(n > 0)
}

/// The sealed AggregationEvents `memberships` says name `child` among their
/// children, at most `PACKINGS_MAX`, in time order. `memberships` only
/// points: the caller checks each event and reads its children from its
/// payload before it follows it.
pub async fn packings(
    client: &clickhouse::Client,
    cache: Option<&tiles::TileCache>,
    child: &str,
) -> clickhouse::error::Result<Vec<StepRow>> {
    let rows = "PREWHERE item_id IN (SELECT item_id FROM memberships WHERE child = ?) \
                AND event_id IN (SELECT event_id FROM memberships WHERE child = ?)";
    let mut rows = client
        .query(&format!(
            "{} ORDER BY event_time_ms, event_id, epoch_id, leaf_index LIMIT ?",
            step_query(rows)
        ))
        .bind(child)
        .bind(child)
        .bind(child)
        .bind(child)
        .bind(PACKINGS_MAX as u64)
        .fetch_all::<StepRow>()
        .await?;
    prove(client, cache, &mut rows).await?;
    Ok(rows)
}

/// An item's steps from `from_ms` to `until_ms` (both included, `None` for
/// no end), at most `PAGE_MAX`, in time order: a container's steps while
/// something was inside it.
pub async fn item_window(
    client: &clickhouse::Client,
    cache: Option<&tiles::TileCache>,
    item_id: &str,
    from_ms: i64,
    until_ms: Option<i64>,
) -> clickhouse::error::Result<Vec<StepRow>> {
    let until = until_ms.unwrap_or(i64::MAX);
    let rows = "PREWHERE item_id = ? AND event_time_ms >= ? AND event_time_ms <= ?";
    let mut rows = client
        .query(&format!(
            "{} ORDER BY event_time_ms, event_id, epoch_id, leaf_index LIMIT ?",
            step_query(rows)
        ))
        .bind(item_id)
        .bind(from_ms)
        .bind(until)
        .bind(item_id)
        .bind(from_ms)
        .bind(until)
        .bind(PAGE_MAX as u64)
        .fetch_all::<StepRow>()
        .await?;
    prove(client, cache, &mut rows).await?;
    Ok(rows)
}
