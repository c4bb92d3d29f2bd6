/* sql/tools--1.1--1.2.sql: background workers, live progress, verification */

\echo Use "ALTER EXTENSION tools UPDATE TO '1.2'" to load this file. \quit

ALTER TABLE @extschema@.job
    ADD COLUMN total bigint,
    ADD COLUMN rate numeric,
    ADD COLUMN updated timestamptz;

COMMENT ON COLUMN @extschema@.job.total IS
    'rows of the job''s source range: the planner''s estimate, or a count by tools.estimate(exact => true)';
COMMENT ON COLUMN @extschema@.job.rate IS
    'rows per second of the job''s last committed batch';
COMMENT ON COLUMN @extschema@.job.updated IS
    'when tools.start() last recorded the job: started, a batch, or a failure';

-- A job is active while a process holds its job lock: an advisory lock
-- whose objsubid is 0x7430 and whose classid and objid are the job id's
-- high and low halves (src/tools.h).
CREATE VIEW @extschema@.progress AS
SELECT j.run_id,
       j.job_id,
       c.target,
       j.state,
       j.rows,
       j.total,
       CASE WHEN j.state OPERATOR(pg_catalog.=) 'completed' THEN 100.0
            WHEN j.total OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.round(100.0 OPERATOR(pg_catalog.*)
                     LEAST(j.rows, j.total) OPERATOR(pg_catalog./) j.total, 1)
       END AS percent,
       CASE WHEN j.state OPERATOR(pg_catalog.=) 'completed'
            THEN pg_catalog.round(j.rows OPERATOR(pg_catalog./)
                     NULLIF(EXTRACT(epoch FROM j.elapsed)::pg_catalog.numeric, 0), 1)
            WHEN a.active THEN pg_catalog.round(j.rate, 1)
       END AS rate,
       CASE WHEN j.state OPERATOR(pg_catalog.=) 'completed' THEN '0'::pg_catalog.interval
            WHEN a.active AND j.rate OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.make_interval(secs =>
                     (GREATEST(j.total OPERATOR(pg_catalog.-) j.rows, 0)
                      OPERATOR(pg_catalog./) j.rate)::pg_catalog.float8)
       END AS eta
  FROM @extschema@.job AS j
  LEFT JOIN @extschema@.config AS c ON c.config_id OPERATOR(pg_catalog.=) j.config_id
  CROSS JOIN LATERAL (
      SELECT j.state OPERATOR(pg_catalog.=) 'running' AND EXISTS (
          SELECT FROM pg_catalog.pg_locks AS l
           WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
             AND l.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database
                  WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
             AND l.objsubid OPERATOR(pg_catalog.=) 29744
             AND l.classid::pg_catalog.int8 OPERATOR(pg_catalog.=) (j.job_id OPERATOR(pg_catalog.>>) 32)
             AND l.objid::pg_catalog.int8 OPERATOR(pg_catalog.=) (j.job_id OPERATOR(pg_catalog.&) 4294967295)
             AND l.granted) AS active) AS a;

COMMENT ON VIEW @extschema@.progress IS
    'each job: rows copied of its estimated total, percent, recent rows per second and time left while it runs';

CREATE FUNCTION @extschema@.estimate(run_id bigint DEFAULT NULL, exact boolean DEFAULT false)
RETURNS TABLE (job_id bigint, total bigint)
LANGUAGE c VOLATILE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'tools_estimate';

COMMENT ON FUNCTION @extschema@.estimate(bigint, boolean) IS
    'set the total of each job of a run (the latest when NULL): the planner''s estimate, or a count of the source when exact';

CREATE FUNCTION @extschema@.verify(run_id bigint DEFAULT NULL)
RETURNS TABLE (job_id bigint, target regclass, lower text, upper text,
               source_rows bigint, target_rows bigint,
               source_hash numeric, target_hash numeric, ok boolean)
LANGUAGE c VOLATILE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'tools_verify';

COMMENT ON FUNCTION @extschema@.verify(bigint) IS
    'compare each job''s key range on the source and the target: row counts and an order-independent hash of the rows';

CREATE FUNCTION @extschema@.launch(run_id bigint DEFAULT NULL, workers integer DEFAULT 2)
RETURNS integer
LANGUAGE c VOLATILE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'tools_launch';

COMMENT ON FUNCTION @extschema@.launch(bigint, integer) IS
    'start background workers that run the jobs of a run (the latest when NULL) left to do, by priority; returns how many started';

CREATE FUNCTION @extschema@.cancel(run_id bigint DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'tools_cancel';

COMMENT ON FUNCTION @extschema@.cancel(bigint) IS
    'stop the workers of a run: their current batches roll back, their jobs fail and stay resumable; returns how many were stopped';

CREATE FUNCTION @extschema@.wait(run_id bigint DEFAULT NULL)
RETURNS SETOF @extschema@.report
LANGUAGE c VOLATILE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'tools_wait';

COMMENT ON FUNCTION @extschema@.wait(bigint) IS
    'wait until no worker and no call runs a job of the run, then return its report';
