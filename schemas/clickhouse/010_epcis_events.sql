-- EPCIS events of every type beside scan events (schemas/epcis_event.avsc): the
-- columns analysts need for them, read off each event's JSON by the sealer. A
-- scan event is an ObjectEvent with none of these. The payload stays the only
-- thing proven; readers compare these columns with it and never show them.
ALTER TABLE sealtrail.scan_events ADD COLUMN event_type String DEFAULT 'ObjectEvent';
ALTER TABLE sealtrail.scan_events ADD COLUMN parent_id String DEFAULT '';
ALTER TABLE sealtrail.scan_events ADD COLUMN child_epcs Array(String);
ALTER TABLE sealtrail.scan_events ADD COLUMN quantity_classes Array(String);
ALTER TABLE sealtrail.scan_events ADD COLUMN quantities Array(Float64);
ALTER TABLE sealtrail.scan_events ADD COLUMN quantity_uoms Array(String);
ALTER TABLE sealtrail.scan_events ADD COLUMN sensor_types Array(String);
ALTER TABLE sealtrail.scan_events ADD COLUMN sensor_values Array(Float64);
ALTER TABLE sealtrail.scan_events ADD COLUMN event_hash String DEFAULT '';

-- Which containers an object was packed into: one row per child of every
-- AggregationEvent, sorted by the child, so a trail finds its item's
-- containers by the sort key. Rows only point at events: a trail reads each
-- event itself and checks it before it follows a packing.
CREATE MATERIALIZED VIEW IF NOT EXISTS sealtrail.memberships
ENGINE = MergeTree
ORDER BY (child, event_time_ms, event_id)
POPULATE
AS SELECT arrayJoin(child_epcs) AS child, item_id, event_id, event_time_ms
FROM sealtrail.scan_events
WHERE event_type = 'AggregationEvent';

-- Kept EPCIS events by their GS1 event hash: the same event captured again
-- under another eventID is a duplicate, found by the hash.
CREATE MATERIALIZED VIEW IF NOT EXISTS sealtrail.events_by_hash
ENGINE = MergeTree
ORDER BY event_hash
POPULATE
AS SELECT event_hash, event_id, epoch_id FROM sealtrail.scan_events
WHERE event_hash != '';
