/* sql/tools--1.8--1.9.sql: repair() calls of one run share its jobs */

\echo Use "ALTER EXTENSION tools UPDATE TO '1.9'" to load this file. \quit

-- When the job's last repair ended: repair() calls of a run made at once
-- share its jobs, and a call leaves alone a job that another one repaired
-- after it began.
ALTER TABLE @extschema@.job ADD COLUMN repaired timestamptz;

COMMENT ON COLUMN @extschema@.job.repaired IS
    'when tools.repair() last ended on the job; NULL: never';
