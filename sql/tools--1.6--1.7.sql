/* sql/tools--1.6--1.7.sql: repair() looks at the rows changed since the copy */

\echo Use "ALTER EXTENSION tools UPDATE TO '1.7'" to load this file. \quit

-- Where the source stood when a job's copy began: the oldest transaction
-- that was running on its server (txid_snapshot_xmin(), with its epoch),
-- and that server's system identifier.  Every row version written later
-- carries a newer xmin, so repair() reads only those, and compares the
-- keys of both sides for the rows deleted since.  NULL: not known.
ALTER TABLE @extschema@.job ADD COLUMN source_xmin bigint,
    ADD COLUMN source_system bigint;

COMMENT ON COLUMN @extschema@.job.source_xmin IS
    'the oldest transaction running on the source''s server when the job''s copy (or its last repair) began; NULL: not known';
COMMENT ON COLUMN @extschema@.job.source_system IS
    'the system identifier of the source''s server, which source_xmin belongs to';

DROP PROCEDURE @extschema@.repair(bigint);

CREATE PROCEDURE @extschema@.repair(run_id bigint DEFAULT NULL,
                                    all_rows boolean DEFAULT false)
LANGUAGE c AS 'MODULE_PATHNAME', 'tools_repair';

COMMENT ON PROCEDURE @extschema@.repair(bigint, boolean) IS
    'makes each job''s range of the target equal to its source again, writing only the rows that differ: of the rows changed on the source since the copy and the keys either side lacks, or, with all_rows, of every row';
