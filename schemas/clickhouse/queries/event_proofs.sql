-- The RFC 9162 inclusion proof of each event named, from ClickHouse alone:
-- one row per event with its epoch, leaf index and proof (sibling hashes,
-- leaf to root). Fold it with the event's leaf hash (SHA-256 of 0x00 and the
-- payload) to the root of its epoch, and compare that root with the ledger's.
--
-- Put the event ids in place of {event_ids}, quoted and comma-separated:
-- '1b4e28ba-2fa1-4d3b-a3f5-ef19d3a7b1f2', '…'. The suite runs this very text
-- (sealer/tests/trail.rs) and compares each proof with the verifier's.
--
-- How it reads the tree (verifier/src/tile.rs): the sibling of leaf i at tree
-- level k is node j = (i >> k) xor 1, kept in tile (k div 8, j >> (8 - k mod 8)),
-- row k mod 8, at place j mod 2^(8 - k mod 8). A sibling the tree does not
-- have (an unpaired node is promoted, RFC 6962) is past the end of its row
-- and reads as ''. Rows sealed before trees were stored in tiles carry their
-- own proof, which is taken as it is.
SELECT
    event_id,
    epoch_id,
    leaf_index,
    if(notEmpty(any(own)), any(own),
       arrayMap(s -> toFixedString(s.2, 32),
                arraySort(s -> s.1, groupArrayIf(
                    (k, substring(rows[k % 8 + 1],
                                  bitAnd(bitXor(bitShiftRight(leaf_index, k), 1),
                                         bitShiftLeft(1, 8 - k % 8) - 1) * 32 + 1,
                                  32) AS sibling),
                    sibling != '')))) AS proof
FROM
(
    SELECT event_id, epoch_id, leaf_index, own, k,
           toUInt8(intDiv(k, 8)) AS tile_level,
           toUInt32(bitShiftRight(bitXor(bitShiftRight(leaf_index, k), 1), 8 - k % 8)) AS tile_index
    FROM
    (
        SELECT event_id, epoch_id, leaf_index, proof AS own
        FROM sealtrail.scan_events
        PREWHERE item_id IN (SELECT item_id FROM sealtrail.events_by_id WHERE event_id IN ({event_ids}))
             AND event_id IN ({event_ids})
        WHERE epoch_id IN (SELECT epoch_id FROM sealtrail.epochs GROUP BY epoch_id
                           HAVING argMax(status, version) != 'void')
    )
    ARRAY JOIN range(32) AS k
)
ANY LEFT JOIN
(
    SELECT epoch_id, tile_level, tile_index, rows
    FROM sealtrail.epoch_tiles
    WHERE epoch_id IN (SELECT epoch_id FROM sealtrail.scan_events
                       PREWHERE item_id IN (SELECT item_id FROM sealtrail.events_by_id
                                            WHERE event_id IN ({event_ids}))
                            AND event_id IN ({event_ids}))
) USING (epoch_id, tile_level, tile_index)
GROUP BY event_id, epoch_id, leaf_index
