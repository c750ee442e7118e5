-- Finding one event by its id. scan_events is sorted by item for trails, so a
-- lookup by event_id alone reads every granule of payloads and proofs; this small
-- index, sorted by event_id, gives the item first, and the item's rows are a few
-- granules. Filled from every insert into scan_events, and now from what is there.
CREATE MATERIALIZED VIEW IF NOT EXISTS sealtrail.events_by_id
ENGINE = MergeTree
ORDER BY event_id
POPULATE
AS SELECT event_id, item_id FROM sealtrail.scan_events;
