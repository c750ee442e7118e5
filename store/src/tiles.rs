//! Each epoch's tree in `epoch_tiles` (the layout is `verifier::tile`'s): written
//! by the sealer between the event rows and the epoch row, read back as the
//! inclusion proofs of the rows every reader checks, and streamed by the audit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::sync::OnceCell;
use verifier::proof::Hash;
use verifier::tile::{Tile, TileId, HEIGHT, WIDTH};

/// The most bytes a tile row holds.
const MAX_ROW: u64 = WIDTH * 32;

/// One row of `epoch_tiles`: `rows[r]` is row r of the tile, 32 bytes a node.
#[derive(Row, Serialize, Deserialize, Debug, Clone)]
pub struct TileRow {
    pub epoch_id: u64,
    pub tile_level: u8,
    pub tile_index: u32,
    pub rows: Vec<ByteBuf>,
}

impl TileRow {
    pub fn of(epoch_id: u64, t: &Tile) -> TileRow {
        TileRow {
            epoch_id,
            tile_level: t.id.level,
            tile_index: t.id.index,
            rows: t
                .rows
                .iter()
                .map(|row| ByteBuf::from(row.concat()))
                .collect(),
        }
    }

    /// The tile as stored. A row whose length is not a whole number of hashes
    /// keeps only its whole hashes: what it lacks reads as missing.
    pub fn tile(&self) -> Tile {
        Tile {
            id: TileId {
                level: self.tile_level,
                index: self.tile_index,
            },
            rows: self
                .rows
                .iter()
                .map(|row| {
                    row.chunks_exact(32)
                        .map(|c| {
                            let mut h: Hash = [0; 32];
                            h.copy_from_slice(c);
                            h
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

/// An epoch's tiles, in one insert (one block: it lands whole or not at all).
pub async fn insert(
    client: &clickhouse::Client,
    epoch_id: u64,
    tiles: &[Tile],
) -> clickhouse::error::Result<()> {
    let mut insert = client
        .clone()
        .with_compression(clickhouse::Compression::None)
        .insert::<TileRow>("epoch_tiles")
        .await?;
    for t in tiles {
        insert.write(&TileRow::of(epoch_id, t)).await?;
    }
    insert.end().await
}

/// Tile rows already written for an epoch: after a failed insert, tells whether
/// it landed anyway.
pub async fn count(client: &clickhouse::Client, epoch_id: u64) -> clickhouse::error::Result<u64> {
    client
        .query("SELECT count() FROM epoch_tiles WHERE epoch_id = ?")
        .bind(epoch_id)
        .fetch_one()
        .await
}

/// The most copies of one tile read: one, unless an insert was retried after
/// it had landed, a zombie sealer shared an epoch id (ARCHITECTURE.md), or
/// someone with write access added some; the reader keeps the copy whose
/// proof folds to the epoch's root.
pub const COPIES: u64 = 4;

/// The stored copies of the tiles `wanted` (sorted) names, by epoch and tile.
pub async fn fetch(
    client: &clickhouse::Client,
    wanted: &[(u64, TileId)],
) -> clickhouse::error::Result<HashMap<(u64, TileId), Vec<Tile>>> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    // A tile has at most 8 rows of 256 hashes: anything past that is not read
    // (a row anyone with write access made huge costs the reader nothing).
    // Numbers, so they go into the text as they are. The epochs first: the
    // table's key, so only their granules are read.
    let mut epochs: Vec<String> = wanted.iter().map(|w| w.0.to_string()).collect();
    epochs.dedup();
    let keys: Vec<String> = wanted
        .iter()
        .map(|(e, id)| format!("({e},{},{})", id.level, id.index))
        .collect();
    let rows: Vec<TileRow> = client
        .query(&format!(
            "SELECT DISTINCT epoch_id, tile_level, tile_index, \
             arrayMap(r -> substring(r, 1, {MAX_ROW}), arraySlice(rows, 1, {HEIGHT})) AS rows \
             FROM epoch_tiles WHERE epoch_id IN ({}) \
             AND (epoch_id, tile_level, tile_index) IN ({}) \
             LIMIT {COPIES} BY epoch_id, tile_level, tile_index",
            epochs.join(","),
            keys.join(",")
        ))
        .fetch_all()
        .await?;
    let mut tiles: HashMap<(u64, TileId), Vec<Tile>> = HashMap::new();
    for r in rows {
        let t = r.tile();
        tiles.entry((r.epoch_id, t.id)).or_default().push(t);
    }
    Ok(tiles)
}

/// Tiles read before, for a server that answers many readers of the same items
/// (`sealer serve`): an epoch's tiles do not change once its row is written, so
/// a tile is read from ClickHouse once, and readers asking for it at the same
/// moment wait for that one read instead of each sending a query. Only tiles
/// found are kept (a missing one is asked for again), for at most `ttl` (a
/// copy added since is seen then), and at most `capacity` of them (the cache
/// starts over when full).
pub struct TileCache {
    cells: Mutex<HashMap<(u64, TileId), Cell>>,
    capacity: usize,
    ttl: Duration,
}

type Cell = (Instant, Arc<OnceCell<Vec<Tile>>>);

/// Past this many tiles not read yet, a request reads them in one query
/// instead of one each (each still waited for by the requests that need it).
const BATCH_FROM: usize = 4;

impl TileCache {
    pub fn new(capacity: usize, ttl: Duration) -> TileCache {
        TileCache {
            cells: Mutex::new(HashMap::new()),
            capacity,
            ttl,
        }
    }

    /// The cell of `key`: a new one when there is none or it is older than
    /// the ttl.
    fn cell(&self, key: &(u64, TileId)) -> Arc<OnceCell<Vec<Tile>>> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        if cells.len() >= self.capacity && !cells.contains_key(key) {
            cells.clear();
        }
        let fresh = cells
            .get(key)
            .is_some_and(|(at, _)| at.elapsed() < self.ttl);
        if !fresh {
            cells.insert(*key, (Instant::now(), Arc::new(OnceCell::new())));
        }
        cells
            .get(key)
            .map(|(_, c)| c.clone())
            .expect("inserted above")
    }

    /// The stored copies of the tiles `wanted` names, from the cache or read.
    pub async fn fetch(
        &self,
        client: &clickhouse::Client,
        wanted: &[(u64, TileId)],
    ) -> clickhouse::error::Result<HashMap<(u64, TileId), Vec<Tile>>> {
        let mut out = HashMap::new();
        let cells: Vec<Arc<OnceCell<Vec<Tile>>>> = wanted.iter().map(|k| self.cell(k)).collect();
        // Many tiles not read yet (a page of steps over many epochs): one
        // query for all of them, not one each.
        let unread: Vec<(u64, TileId)> = wanted
            .iter()
            .zip(&cells)
            .filter(|(_, c)| !c.initialized())
            .map(|(k, _)| *k)
            .collect();
        if unread.len() > BATCH_FROM {
            let mut found = fetch(client, &unread).await?;
            for (key, cell) in wanted.iter().zip(&cells) {
                // Another request may have filled it meanwhile: the same tiles.
                let _ = cell.set(found.remove(key).unwrap_or_default());
            }
        }
        for (key, cell) in wanted.iter().zip(cells) {
            let tiles = cell
                .get_or_try_init(|| async {
                    fetch(client, std::slice::from_ref(key))
                        .await
                        .map(|mut found| found.remove(key).unwrap_or_default())
                })
                .await?;
            if tiles.is_empty() {
                let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
                if cells.get(key).is_some_and(|(_, c)| Arc::ptr_eq(c, &cell)) {
                    cells.remove(key);
                }
            } else {
                out.insert(*key, tiles.clone());
            }
        }
        Ok(out)
    }
}

/// Every tile, in epoch, level and index order, streamed (the audit's). Rows
/// are read a hash longer than any tile's and one row more than a tile has:
/// enough to see that a tile is not what it should be, and no more.
pub fn all(
    client: &clickhouse::Client,
) -> clickhouse::error::Result<clickhouse::query::RowCursor<TileRow>> {
    client
        .query(&format!(
            "SELECT epoch_id, tile_level, tile_index, \
             arrayMap(r -> substring(r, 1, {}), arraySlice(rows, 1, {})) AS rows \
             FROM epoch_tiles ORDER BY epoch_id, tile_level, tile_index",
            MAX_ROW + 32,
            HEIGHT + 1
        ))
        .fetch::<TileRow>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use verifier::proof::{leaf_hash, EpochTree};
    use verifier::tile::{proof_from, tiles_of, TileError};

    /// A tile row as stored and read back is the same tile; a row of a
    /// length that is not whole hashes, or an empty one, reads as short: an
    /// error for the proof, never a panic.
    #[test]
    fn malformed_rows_read_as_short_tiles() {
        let leaves: Vec<Hash> = (0u32..300).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let tiles = tiles_of(&EpochTree::build(&leaves));
        let row = TileRow::of(7, &tiles[0]);
        assert_eq!(row.tile(), tiles[0]);

        let mut cut = row.clone();
        cut.rows[0] = ByteBuf::from(cut.rows[0][..33].to_vec());
        cut.rows[1] = ByteBuf::from(Vec::new());
        let read = cut.tile();
        assert_eq!(read.rows[0].len(), 1, "33 bytes: one whole hash");
        assert!(read.rows[1].is_empty());
        let got = proof_from(5, 300, |id| {
            (id == read.id)
                .then_some(&read)
                .or(tiles.iter().find(|t| t.id == id))
        });
        assert!(
            matches!(got, Err(TileError::Short { row: 0, .. })),
            "{got:?}"
        );

        let mut extra = row.clone();
        extra
            .rows
            .extend(std::iter::repeat_n(ByteBuf::from(vec![0u8; 1 << 20]), 20));
        assert_eq!(
            extra.tile().rows.len(),
            28,
            "read, not trusted: the audit compares it"
        );
    }
}
