//! How an epoch's tree is stored: once, in tiles, not as a proof per event.
//!
//! The geometry is C2SP tlog-tiles': a tile spans 8 levels of the tree and
//! 256 nodes at its lowest level. Tile `(level L, index N)` holds the nodes of
//! tree levels `8L` to `8L + 7` that lie under nodes `256N .. 256N + 255` of
//! level `8L`. Unlike tlog-tiles, which keeps only a tile's lowest row and
//! hashes the rest on reading, a tile here keeps all of its 8 rows (about 2n
//! hashes for n leaves instead of n): an inclusion proof is then read from
//! the tiles without hashing, by a reader in any language, and by one SQL
//! query (`schemas/clickhouse/queries/event_proofs.sql`).
//!
//! An epoch's tree is RFC 6962's with an unpaired last node promoted
//! (`proof::EpochTree`), so level k has `ceil(n / 2^k)` nodes and the sibling
//! of leaf i at level k, when there is one, is node `(i >> k) ^ 1`. The root's
//! level is not stored (the epoch row has the root); a tree of one leaf has no
//! tiles.

use crate::proof::{EpochTree, Hash};

/// Tree levels one tile spans.
pub const HEIGHT: u32 = 8;
/// Nodes of a tile's lowest row.
pub const WIDTH: u64 = 1 << HEIGHT;

/// The most leaves a stored tree has.
pub const MAX_SIZE: u64 = 1 << 32;

/// Where a tile sits: its tile level and its index along that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileId {
    pub level: u8,
    pub index: u32,
}

/// One tile: `rows[r]` holds its nodes of tree level `8 * level + r`, left to right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    pub id: TileId,
    pub rows: Vec<Vec<Hash>>,
}

/// Nodes at tree level `k` of a tree of `size` leaves.
pub fn level_size(size: u64, k: u32) -> u64 {
    if k >= 64 {
        return u64::from(size > 0);
    }
    size.div_ceil(1 << k)
}

/// Levels below the root of a tree of `size` leaves: the length of a proof of
/// its leftmost leaf, and the levels tiles store.
pub fn depth(size: u64) -> u32 {
    if size <= 1 {
        0
    } else {
        64 - (size - 1).leading_zeros()
    }
}

/// One node of a proof: tree level `k`, its index there, and where it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sibling {
    pub level: u32,
    pub node: u64,
    pub tile: TileId,
    /// The row of the tile (`level - 8 * tile.level`) and the place in it.
    pub row: usize,
    pub at: usize,
}

/// The nodes of the inclusion proof of leaf `index` in a tree of `size`
/// leaves, leaf to root, with the tiles they are read from; empty when the
/// index is out of range or the tree has one leaf. Its length is the proof's.
/// Trees hold at most 2^32 leaves (leaf indexes are UInt32 in the store); a
/// larger size has no stored tiles and gives nothing.
pub fn siblings(index: u64, size: u64) -> Vec<Sibling> {
    if index >= size || size > MAX_SIZE {
        return Vec::new();
    }
    (0..depth(size))
        .filter_map(|k| {
            let node = (index >> k) ^ 1;
            (node < level_size(size, k)).then(|| {
                let r = k % HEIGHT;
                let span = HEIGHT - r; // level-k nodes under one tile: 2^span
                Sibling {
                    level: k,
                    node,
                    tile: TileId {
                        level: (k / HEIGHT) as u8,
                        index: (node >> span) as u32,
                    },
                    row: r as usize,
                    at: (node & ((1 << span) - 1)) as usize,
                }
            })
        })
        .collect()
}

/// The tiles a proof of leaf `index` in a tree of `size` leaves reads, each once.
pub fn tiles_for(index: u64, size: u64) -> Vec<TileId> {
    let mut ids: Vec<TileId> = siblings(index, size).iter().map(|s| s.tile).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The tiles of `tree`, in (level, index) order.
pub fn tiles_of(tree: &EpochTree) -> Vec<Tile> {
    let stored = tree.height().saturating_sub(1); // not the root's
    let mut tiles = Vec::new();
    for base in (0..stored).step_by(HEIGHT as usize) {
        let width = tree.level(base).len().div_ceil(WIDTH as usize);
        for n in 0..width {
            let rows = (base..stored.min(base + HEIGHT as usize))
                .map(|k| {
                    let span = 1usize << (HEIGHT as usize - (k - base));
                    let level = tree.level(k);
                    let from = (n * span).min(level.len());
                    let to = ((n + 1) * span).min(level.len());
                    level[from..to].to_vec()
                })
                .collect();
            tiles.push(Tile {
                id: TileId {
                    level: (base / HEIGHT as usize) as u8,
                    index: n as u32,
                },
                rows,
            });
        }
    }
    tiles
}

/// Why a proof could not be read from the stored tiles. Each is a fault of the
/// store, never a panic: the tiles are input like any other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("tile {level}/{index} of the epoch is missing")]
    Missing { level: u8, index: u32 },
    #[error("tile {level}/{index} of the epoch has no node {at} in row {row}")]
    Short {
        level: u8,
        index: u32,
        row: usize,
        at: usize,
    },
}

/// The inclusion proof of leaf `index` in a tree of `size` leaves, read from
/// the tiles `tile` finds. What it gives is not checked here: a proof read from
/// altered tiles does not fold to the root, and the verifier says so.
pub fn proof_from<'t>(
    index: u64,
    size: u64,
    tile: impl Fn(TileId) -> Option<&'t Tile>,
) -> Result<Vec<Hash>, TileError> {
    siblings(index, size)
        .into_iter()
        .map(|s| {
            let t = tile(s.tile).ok_or(TileError::Missing {
                level: s.tile.level,
                index: s.tile.index,
            })?;
            t.rows
                .get(s.row)
                .and_then(|row| row.get(s.at))
                .copied()
                .ok_or(TileError::Short {
                    level: s.tile.level,
                    index: s.tile.index,
                    row: s.row,
                    at: s.at,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::{leaf_hash, verify};
    use std::collections::HashMap;

    fn tree(n: usize) -> (Vec<Hash>, EpochTree) {
        let leaves: Vec<Hash> = (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let tree = EpochTree::build(&leaves);
        (leaves, tree)
    }

    #[test]
    fn depth_and_level_sizes_follow_the_tree() {
        for n in [1usize, 2, 3, 4, 5, 255, 256, 257, 511, 513, 65_537] {
            let (_, t) = tree(n);
            assert_eq!(depth(n as u64) as usize, t.height() - 1, "{n}");
            for k in 0..t.height() {
                assert_eq!(
                    level_size(n as u64, k as u32),
                    t.level(k).len() as u64,
                    "{n} {k}"
                );
            }
        }
    }

    /// Every leaf's proof read from the tiles is the tree's own, and verifies,
    /// for sizes around each tile boundary.
    #[test]
    fn proofs_from_tiles_are_the_trees_proofs() {
        for n in [
            1usize, 2, 3, 7, 8, 9, 255, 256, 257, 300, 511, 512, 513, 1000, 65_536, 65_537,
        ] {
            let (leaves, t) = tree(n);
            let tiles: HashMap<TileId, Tile> =
                tiles_of(&t).into_iter().map(|t| (t.id, t)).collect();
            let step = if n > 2_000 { 97 } else { 1 };
            for i in (0..n).step_by(step).chain([n - 1]) {
                let p = proof_from(i as u64, n as u64, |id| tiles.get(&id)).unwrap();
                assert_eq!(p, t.proof(i), "n {n} leaf {i}");
                assert!(verify(&leaves[i], i as u64, n as u64, &p, &t.root()));
                assert!(tiles_for(i as u64, n as u64)
                    .iter()
                    .all(|id| tiles.contains_key(id)));
            }
        }
    }

    /// About two hashes a leaf, and a proof reads one tile per 8 levels.
    #[test]
    fn storage_is_linear_and_reads_are_few() {
        let n = 100_000u64;
        let (_, t) = tree(n as usize);
        let tiles = tiles_of(&t);
        let hashes: usize = tiles.iter().flat_map(|t| &t.rows).map(Vec::len).sum();
        assert!(
            hashes as u64 <= 2 * n + u64::from(depth(n)),
            "{hashes} hashes for {n} leaves"
        );
        assert_eq!(tiles_for(n - 1, n).len(), 3, "17 levels: 3 tiles");
        assert_eq!(tiles_for(0, n).len(), 3);
        assert!(
            tiles_of(&tree(1).1).is_empty(),
            "one leaf: nothing to store"
        );
    }

    #[test]
    fn a_missing_or_short_tile_is_an_error_not_a_panic() {
        let (_, t) = tree(600);
        let mut tiles: HashMap<TileId, Tile> =
            tiles_of(&t).into_iter().map(|t| (t.id, t)).collect();
        let top = TileId { level: 1, index: 0 };
        tiles.get_mut(&top).unwrap().rows.truncate(0);
        assert!(matches!(
            proof_from(599, 600, |id| tiles.get(&id)),
            Err(TileError::Short { level: 1, .. })
        ));
        tiles.remove(&TileId { level: 0, index: 2 });
        assert_eq!(
            proof_from(599, 600, |id| tiles.get(&id)),
            Err(TileError::Missing { level: 0, index: 2 })
        );
        assert!(proof_from(600, 600, |id| tiles.get(&id))
            .unwrap()
            .is_empty());
        assert_eq!(siblings(0, MAX_SIZE).len(), 32);
        assert_eq!(tiles_for(MAX_SIZE - 1, MAX_SIZE).len(), 4);
        assert!(siblings(0, MAX_SIZE + 1).is_empty());
    }
}
