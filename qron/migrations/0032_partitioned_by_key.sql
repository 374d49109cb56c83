-- The waiting jobs of one partition key, of every owner, found together (issue 30).
--
-- Under a limit per value of a payload field, owners share a key: the one that held its
-- places passed each to its own next job of the key (a successor) or took it again with the
-- next lease, so another owner's jobs of that key waited until the first owner's were all
-- done. A place now passes within an owner only while no other owner has a due job of the key;
-- otherwise it is given out by the lease's scan, which walks the owners in turn. To ask that
-- with two short index look-ups (an owner before, an owner after), the index of the keyed
-- queue leads with the key, then the owner: the look-up of one owner's jobs of a key is as
-- direct as before.
DROP INDEX qron.jobs_partitioned;
CREATE INDEX jobs_partitioned ON qron.jobs (executor, partition_key, owner COLLATE "C", lease_at, id)
    WHERE status = 'ready' AND NOT scheduled AND partition_key IS NOT NULL;
