/* sql/tools--1.3--1.4.sql: a job whose process died shows failed */

\echo Use "ALTER EXTENSION tools UPDATE TO '1.4'" to load this file. \quit

-- A process runs a job while it holds the job's lock: an advisory lock
-- whose objsubid is 0x7430 and whose classid and objid are the job id's
-- high and low halves (src/tools.h).  A job recorded running that no
-- process holds was stopped without a word (its process killed, terminated,
-- or the server crashed): it is failed, and the next call resumes it.
CREATE FUNCTION @extschema@.active(job_id bigint) RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
SELECT EXISTS (
    SELECT FROM pg_catalog.pg_locks AS l
     WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
       AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database AS d
            WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
       AND l.objsubid OPERATOR(pg_catalog.=) 29744
       AND l.classid::pg_catalog.int8 OPERATOR(pg_catalog.=) ($1 OPERATOR(pg_catalog.>>) 32)
       AND l.objid::pg_catalog.int8 OPERATOR(pg_catalog.=) ($1 OPERATOR(pg_catalog.&) 4294967295)
       AND l.granted)
$$;

COMMENT ON FUNCTION @extschema@.active(bigint) IS
    'whether a process runs the job now (holds its lock)';

-- The state a job is in: as recorded, except running with no process at
-- it.  The state given was read before the lock was looked at, and a job
-- records its end before it lets go of its lock: so a job recorded running
-- whose lock nobody holds is read again, and only if it is still running
-- then did its process die.  (A function that reads a table sees what has
-- committed when it reads it, from its own snapshot.)  Both are volatile:
-- locks come and go while a query runs.
CREATE FUNCTION @extschema@.current_state(state @extschema@.state, job_id bigint)
RETURNS @extschema@.state
LANGUAGE plpgsql VOLATILE PARALLEL SAFE
AS $$
DECLARE
    now_state @extschema@.state;
BEGIN
    IF $1 OPERATOR(pg_catalog.<>) 'running' OR @extschema@.active($2) THEN
        RETURN $1;
    END IF;
    SELECT j.state INTO now_state FROM @extschema@.job AS j
     WHERE j.job_id OPERATOR(pg_catalog.=) $2;
    IF now_state IS NULL OR now_state OPERATOR(pg_catalog.=) 'running' THEN
        RETURN 'failed';
    END IF;
    RETURN now_state;
END
$$;

COMMENT ON FUNCTION @extschema@.current_state(@extschema@.state, bigint) IS
    'a job''s recorded state, failed instead of running when no process runs it';

CREATE OR REPLACE VIEW @extschema@.report AS
SELECT j.run_id,
       c.target,
       pg_catalog.min(j.ts) AS job_start,
       pg_catalog.min(@extschema@.current_state(j.state, j.job_id)) AS state,
       pg_catalog.sum(j.rows) AS rows,
       pg_catalog.sum(j.elapsed) AS elapsed,
       pg_catalog.round(pg_catalog.sum(j.rows) OPERATOR(pg_catalog./)
           NULLIF(EXTRACT(epoch FROM pg_catalog.sum(j.elapsed))::pg_catalog.numeric, 0), 1) AS rate
  FROM @extschema@.job AS j
  LEFT JOIN @extschema@.config AS c ON c.config_id OPERATOR(pg_catalog.=) j.config_id
 GROUP BY j.run_id, c.target;

CREATE OR REPLACE VIEW @extschema@.progress AS
SELECT j.run_id,
       j.job_id,
       c.target,
       s.state,
       j.rows,
       j.total,
       CASE WHEN s.state OPERATOR(pg_catalog.=) 'completed' THEN 100.0
            WHEN j.total OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.round(100.0 OPERATOR(pg_catalog.*)
                     LEAST(j.rows, j.total) OPERATOR(pg_catalog./) j.total, 1)
       END AS percent,
       CASE WHEN s.state OPERATOR(pg_catalog.=) 'completed'
            THEN pg_catalog.round(j.rows OPERATOR(pg_catalog./)
                     NULLIF(EXTRACT(epoch FROM j.elapsed)::pg_catalog.numeric, 0), 1)
            WHEN s.state OPERATOR(pg_catalog.=) 'running' THEN pg_catalog.round(j.rate, 1)
       END AS rate,
       CASE WHEN s.state OPERATOR(pg_catalog.=) 'completed' THEN '0'::pg_catalog.interval
            WHEN s.state OPERATOR(pg_catalog.=) 'running' AND j.rate OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.make_interval(secs =>
                     (GREATEST(j.total OPERATOR(pg_catalog.-) j.rows, 0)
                      OPERATOR(pg_catalog./) j.rate)::pg_catalog.float8)
       END AS eta
  FROM @extschema@.job AS j
  LEFT JOIN @extschema@.config AS c ON c.config_id OPERATOR(pg_catalog.=) j.config_id
  CROSS JOIN LATERAL (
      SELECT @extschema@.current_state(j.state, j.job_id) AS state) AS s;
