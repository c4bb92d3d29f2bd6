-- The specification's example, end to end, with the numbers its seed
-- shows: t1 copied in one operation and truncated at each run (priority
-- 100), t2 split between two jobs by a modulo condition, batches of 200,
-- not truncated (priority 1).  Job ids follow the configuration; run()
-- returns the statements by priority; a pending job shows where it will
-- start (lastseq 0, or the earlier run's position); the report of a run
-- not started has no elapsed time.
CREATE TABLE source.t1 (id int PRIMARY KEY, v text);
INSERT INTO source.t1 SELECT g, 'v' || g FROM generate_series(1, 500) g;
CREATE TABLE source.t2 (id int PRIMARY KEY, v text);
INSERT INTO source.t2 SELECT g, 'v' || g FROM generate_series(1, 2000) g;
CREATE TABLE public.t1 (id int, v text);
CREATE TABLE public.t2 (id int, v text);

-- t1 will be copied in a single operation and must be truncated at new run
INSERT INTO tools.config
  (source, target, pkey, priority, condition, batchsize, trunc)
VALUES
  ('source.t1', 'public.t1', 'id', 100, null, null, true);

-- t2 will be dispatched to two jobs, each will insert data with a batch size of 200
INSERT INTO tools.config
  (source, target, pkey, priority, condition, batchsize, trunc)
VALUES
  ('source.t2', 'public.t2', 'id', 1, 'id % 2 = 0', 200, false),
  ('source.t2', 'public.t2', 'id', 1, 'id % 2 = 1', 200, false);

SELECT * FROM tools.run();
SELECT run_id, job_id, config_id, lastseq, lastkey, rows, state FROM tools.job ORDER BY job_id;
SELECT run_id, target, job_start, state, rows, elapsed, rate FROM tools.report ORDER BY target::text;

CALL tools.start(2);
CALL tools.start(3);
CALL tools.start(1);
SELECT run_id, job_id, config_id, lastseq, rows, state FROM tools.job ORDER BY job_id;
SELECT run_id, target, state, rows, elapsed > '0' AS spent FROM tools.report ORDER BY target::text;

-- New rows, and a second run: t2's jobs continue where the first run's
-- stopped, and show it before they start; t1 starts over.
INSERT INTO source.t2 SELECT g, 'v' || g FROM generate_series(2001, 2100) g;
SELECT * FROM tools.run();
SELECT run_id, job_id, config_id, lastseq, lastkey, rows, state FROM tools.job WHERE run_id = 2 ORDER BY job_id;
CALL tools.start(5);
CALL tools.start(6);
CALL tools.start(4);
SELECT run_id, job_id, lastseq, rows, state FROM tools.job WHERE run_id = 2 ORDER BY job_id;
SELECT (SELECT count(*) FROM public.t1) AS t1_rows, (SELECT count(*) FROM public.t2) AS t2_rows,
       (SELECT count(DISTINCT id) FROM public.t2) AS t2_ids;

DROP TABLE source.t1, source.t2, public.t1, public.t2;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
