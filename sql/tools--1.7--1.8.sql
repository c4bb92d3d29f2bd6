/* sql/tools--1.7--1.8.sql: repair() knows the relation the copy read */

\echo Use "ALTER EXTENSION tools UPDATE TO '1.8'" to load this file. \quit

-- Which relation the job's copy read on the source's server, beside where
-- that server stood (source_xmin, source_system): repair() trusts the rows
-- older than source_xmin only in that relation.  A job recorded before
-- this version has none: repair() compares every row of its range, once,
-- and records it then.
ALTER TABLE @extschema@.job ADD COLUMN source_relation bigint;

COMMENT ON COLUMN @extschema@.job.source_relation IS
    'the relation the job''s copy (or its last repair) read on the source''s server: its database''s OID times 2^32 plus its own OID';
