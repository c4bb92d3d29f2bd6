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

-- Dropping the extension would drop tools.deferred_index, the one record of
-- indexes that jobs dropped and have not built again: refused while it has
-- rows.
CREATE FUNCTION @extschema@.guard_drop() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tools_guard_drop';

COMMENT ON FUNCTION @extschema@.guard_drop() IS
    'refuses to drop the extension, or its schema, while indexes deferred by its jobs are not built again';

CREATE EVENT TRIGGER tools_guard_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION @extschema@.guard_drop();

-- A row whose source is its target, by any spelling, is refused by a check
-- whose name says so.
ALTER TABLE @extschema@.config
    RENAME CONSTRAINT config_check TO config_source_is_not_target;
