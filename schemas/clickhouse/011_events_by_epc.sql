-- Events that list an object beside the one they are filed under (the other
-- EPCs of an ObjectEvent, a transaction's or association's listed objects, a
-- transformation's inputs and outputs): one row per such object, sorted by
-- it, so its trail and MATCH_anyEPC find them by the sort key. Packings are
-- `memberships`' (an item's packing is a container step, not its own step).
-- Rows only point at events: readers keep an event only if its signed
-- payload lists the object.
CREATE MATERIALIZED VIEW IF NOT EXISTS sealtrail.events_by_epc
ENGINE = MergeTree
ORDER BY (epc, event_time_ms, event_id)
POPULATE
AS SELECT arrayJoin(arrayFilter(x -> x != item_id, item_ids)) AS epc, item_id, event_id, event_time_ms
FROM sealtrail.scan_events
WHERE length(item_ids) > 1 AND event_type != 'AggregationEvent';
