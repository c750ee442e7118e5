-- Zombie fencing: the ledger claim (lease) each epoch was sealed under, and
-- 'void' for an epoch the ledger refused because its partitions were claimed by
-- another sealer since. A void epoch's rows are not sealed: readers skip them,
-- the sealed offsets ignore them, and their records are sealed again by the
-- partition's owner. Epochs written before this carry a lease of zeros.
ALTER TABLE sealtrail.epochs ADD COLUMN lease FixedString(16) AFTER range_last_offsets;
ALTER TABLE sealtrail.epochs MODIFY COLUMN status Enum8('pending' = 1, 'anchored' = 2, 'void' = 3);
