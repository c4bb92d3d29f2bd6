-- tools.report: the jobs of each run and target, aggregated.
CREATE TABLE source.r1 (id int PRIMARY KEY);
CREATE TABLE source.r2 (id int PRIMARY KEY);
CREATE TABLE public.r1 (id int);
CREATE TABLE public.r2 (id int);
INSERT INTO source.r1 SELECT generate_series(1, 40);
INSERT INTO source.r2 SELECT generate_series(1, 10);
INSERT INTO tools.config (source, target, pkey, condition, batchsize) VALUES
  ('source.r1', 'public.r1', 'id', 'id % 2 = 0', 5),
  ('source.r1', 'public.r1', 'id', 'id % 2 = 1', 5),
  ('source.r2', 'public.r2', 'id', NULL, NULL);
SELECT statement FROM tools.run();

-- Planned, nothing started: pending, no start time, no rows.
SELECT run_id, target, job_start, state, rows, elapsed, rate
  FROM tools.report ORDER BY run_id, target::text;

-- One job of r1 done: r1 is pending while its other job waits.
CALL tools.start(1);
SELECT run_id, target, job_start IS NOT NULL AS started, state, rows
  FROM tools.report ORDER BY run_id, target::text;

-- The target's state is the smallest of its jobs' by enum order:
-- running < failed < pending < completed.  A job recorded running that no
-- process runs (its process was killed, or the server crashed) is failed:
-- tools.job keeps what the job last recorded, the report says where it
-- stands.  While a process runs it, it is running (test/t/004_workers.pl).
UPDATE tools.job SET state = 'failed' WHERE job_id = 2;
SELECT target, state FROM tools.report ORDER BY target::text;
UPDATE tools.job SET state = 'running' WHERE job_id = 2;
SELECT target, state FROM tools.report ORDER BY target::text;
SELECT job_id, state, tools.active(job_id), tools.current_state(state, job_id)
  FROM tools.job WHERE job_id = 2;
-- A job read running just before it completed, whose process let go of its
-- lock since: it is read again, and completed.
-- No state or no job: no answer.
SELECT tools.current_state(NULL, NULL) IS NULL AS none, tools.current_state('running', NULL) IS NULL AS no_job;
SELECT state AS recorded, tools.current_state('running', job_id)
  FROM tools.job WHERE job_id = 1;

CALL tools.start(2);
CALL tools.start(3);
SELECT run_id, target, state, rows FROM tools.report ORDER BY run_id, target::text;

-- start, rows, elapsed and rate follow from the jobs: first start, sums,
-- rows per second of the summed elapsed time.
UPDATE tools.job SET elapsed = interval '4 seconds', ts = timestamp '2026-01-01 10:00:00' WHERE job_id = 1;
UPDATE tools.job SET elapsed = interval '6 seconds', ts = timestamp '2026-01-01 09:00:00' WHERE job_id = 2;
UPDATE tools.job SET elapsed = interval '0', ts = timestamp '2026-01-01 11:00:00' WHERE job_id = 3;
SELECT run_id, target, job_start, state, rows, elapsed, rate
  FROM tools.report ORDER BY run_id, target::text;

-- The column types of the specification.
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'tools.report'::regclass AND attnum > 0
 ORDER BY attnum;

TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
