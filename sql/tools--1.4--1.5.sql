/* sql/tools--1.4--1.5.sql: a job keeps its key; deferred indexes outlive no drop */

\echo Use "ALTER EXTENSION tools UPDATE TO '1.5'" to load this file. \quit

-- The key a job's positions are written in, as configured when its run was
-- planned: a job, or a new run continuing it, refuses a configuration whose
-- key has changed since, whose positions it could not read.
ALTER TABLE @extschema@.job ADD COLUMN pkey text;

UPDATE @extschema@.job AS j SET pkey = c.pkey
  FROM @extschema@.config AS c
 WHERE c.config_id OPERATOR(pg_catalog.=) j.config_id;

COMMENT ON COLUMN @extschema@.job.pkey IS
    'the key of its configuration when the run was planned, which lastkey is written in';

-- Dropping the extension would drop tools.deferred_index and
-- tools.deferred_constraint, the one record of indexes and foreign keys
-- that jobs dropped and have not built again: refused while they have rows.
CREATE FUNCTION @extschema@.guard_drop() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tools_guard_drop';

COMMENT ON FUNCTION @extschema@.guard_drop() IS
    'refuses to drop the extension, or its schema, while indexes or foreign keys deferred by its jobs are not built again';

CREATE EVENT TRIGGER tools_guard_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION @extschema@.guard_drop();

-- A row whose source is its target, by any spelling, is refused by a check
-- whose name says so.
ALTER TABLE @extschema@.config
    RENAME CONSTRAINT config_check TO config_source_is_not_target;

-- After its copy, a job sets the sequences of its target's serial and
-- identity columns past the values copied, never backwards.
ALTER TABLE @extschema@.config
    ADD COLUMN sequences boolean NOT NULL DEFAULT true;

COMMENT ON COLUMN @extschema@.config.sequences IS
    'set the sequences owned by the target''s columns (serial, identity) past the largest value copied, when a job completes';

-- A source without a key (logs, staging, audit tables) is copied in one
-- batch: pkey NULL.
ALTER TABLE @extschema@.config ALTER COLUMN pkey DROP NOT NULL;

COMMENT ON COLUMN @extschema@.config.pkey IS
    'key of the source that orders the batches: a column, or several separated by commas; NULL: no key, the rows are copied in one batch';

-- Foreign keys of a run's targets, dropped before its jobs copy and added
-- back (NOT VALID, then validated) when the run's jobs on both tables they
-- join have completed.  A row goes in the transaction that drops its key
-- and leaves in the one that validates it again: no crash loses one.
ALTER TABLE @extschema@.config
    ADD COLUMN defer_constraints boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN @extschema@.config.defer_constraints IS
    'drop the foreign keys that belong to or reference the target before the run''s first job, and add them back when the run''s jobs on the tables they join complete';

CREATE TABLE @extschema@.deferred_constraint (
    relation   regclass NOT NULL,
    name       name NOT NULL,
    definition text NOT NULL,
    referenced regclass NOT NULL,
    run_id     bigint NOT NULL,
    deferred   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (relation, name)
);

COMMENT ON TABLE @extschema@.deferred_constraint IS
    'foreign keys dropped for a run''s copy, with their definitions, until they are added back and validated';
COMMENT ON COLUMN @extschema@.deferred_constraint.relation IS
    'the table the foreign key belongs to';
COMMENT ON COLUMN @extschema@.deferred_constraint.definition IS
    'the constraint as pg_get_constraintdef() writes it, every name schema-qualified';
COMMENT ON COLUMN @extschema@.deferred_constraint.referenced IS
    'the table the foreign key references';
COMMENT ON COLUMN @extschema@.deferred_constraint.run_id IS
    'the run whose jobs add it back';

-- Its definitions are run as SQL by the job that adds them back: a role
-- sees and writes only the rows of tables whose owner's rights it has.
ALTER TABLE @extschema@.deferred_constraint ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_rights ON @extschema@.deferred_constraint
    USING (pg_catalog.pg_has_role(
        (SELECT c.relowner FROM pg_catalog.pg_class AS c
          WHERE c.oid OPERATOR(pg_catalog.=) relation::pg_catalog.oid),
        'USAGE'));

SELECT pg_catalog.pg_extension_config_dump('@extschema@.deferred_constraint', '');

-- No state, or no job: no answer.
ALTER FUNCTION @extschema@.current_state(@extschema@.state, bigint) STRICT;

-- A target none of whose jobs has started has spent no time: its elapsed
-- is NULL, as its job_start is.
CREATE OR REPLACE VIEW @extschema@.report AS
SELECT j.run_id,
       c.target,
       pg_catalog.min(j.ts) AS job_start,
       pg_catalog.min(@extschema@.current_state(j.state, j.job_id)) AS state,
       pg_catalog.sum(j.rows) AS rows,
       CASE WHEN pg_catalog.min(j.ts) IS NOT NULL THEN pg_catalog.sum(j.elapsed) END AS elapsed,
       pg_catalog.round(pg_catalog.sum(j.rows) OPERATOR(pg_catalog./)
           NULLIF(EXTRACT(epoch FROM pg_catalog.sum(j.elapsed))::pg_catalog.numeric, 0), 1) AS rate
  FROM @extschema@.job AS j
  LEFT JOIN @extschema@.config AS c ON c.config_id OPERATOR(pg_catalog.=) j.config_id
 GROUP BY j.run_id, c.target;

COMMENT ON COLUMN @extschema@.job.lastseq IS
    'highest key copied by a committed batch, for a key of one integer column; at planning, where the job will start: 0 from the beginning, or the position of the job it continues';
