-- tools.launch(), tools.wait(), tools.cancel(): a run driven by background
-- workers.  wait() returns when the workers are done, so what they did can
-- be checked here; stopping them mid-run is test/t/004_workers.pl's.
\set VERBOSITY terse
CREATE TABLE source.w1 (id int PRIMARY KEY, v text);
CREATE TABLE source.w2 (id int PRIMARY KEY, v text);
INSERT INTO source.w1 SELECT g, 'a' || g FROM generate_series(1, 2000) g;
INSERT INTO source.w2 SELECT g, 'b' || g FROM generate_series(1, 1000) g;
ANALYZE source.w1, source.w2;
CREATE TABLE public.w1 (id int PRIMARY KEY, v text);
CREATE TABLE public.w2 (id int PRIMARY KEY, v text);
CREATE FUNCTION public.fail_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT FROM public.w_fail WHERE id = NEW.id) THEN
    RAISE EXCEPTION 'row % refused', NEW.id;
  END IF;
  RETURN NEW;
END $$;
CREATE TABLE public.w_fail (id int);
CREATE TRIGGER fail_at BEFORE INSERT ON public.w2
  FOR EACH ROW EXECUTE FUNCTION public.fail_at();
INSERT INTO tools.config (source, target, pkey, batchsize, trunc, parts, priority) VALUES
  ('source.w1', 'public.w1', 'id', 300, true, 2, 1),
  ('source.w2', 'public.w2', 'id', 100, true, NULL, 2);

-- Nothing planned yet.
SELECT tools.launch();
SELECT tools.run() IS NOT NULL;

-- Bad arguments, a run that does not exist, a run not yet committed.
SELECT tools.launch(workers => 0);
SELECT tools.launch(workers => NULL);
SELECT tools.launch(42);
SELECT * FROM tools.wait(42);
SELECT tools.cancel(42);
BEGIN;
SELECT count(*) FROM tools.run();
SELECT tools.launch();
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM tools.wait();
ROLLBACK;

-- Two workers run the three jobs; wait() returns the run's final report.
SELECT tools.launch(workers => 2);
SELECT run_id, target, job_start IS NOT NULL AS started, state, rows FROM tools.wait();
SELECT job_id, state, rows, error FROM tools.job ORDER BY job_id;
SELECT bool_and(ok) AS verified FROM tools.verify();
-- Nothing is left: no worker starts.
SELECT tools.launch();
SELECT tools.cancel();

-- A job that fails under a worker is recorded, with its committed batches,
-- and the worker goes on: the other jobs complete.
INSERT INTO public.w_fail VALUES (550);
SELECT count(*) FROM tools.run();
SELECT max(run_id) AS run FROM tools.run \gset
SELECT tools.launch(workers => 1);
SELECT target, state, rows FROM tools.wait();
SELECT c.target, j.state, j.rows, j.error
  FROM tools.job j JOIN tools.config c USING (config_id)
 WHERE j.run_id = :run ORDER BY j.job_id;
-- One worker takes the jobs in priority order.
SELECT array_agg(c.priority ORDER BY j.ts) AS priorities_by_start
  FROM tools.job j JOIN tools.config c USING (config_id) WHERE j.run_id = :run;
-- A job that failed before the launch is taken again: it fails again...
SELECT tools.launch();
SELECT target, state, rows FROM tools.wait();
-- ...until its cause is gone, and it resumes where it stopped.
DELETE FROM public.w_fail;
SELECT tools.launch(:run);
SELECT target, state, rows FROM tools.wait(:run);
SELECT count(*) AS w2_rows, count(DISTINCT id) AS w2_ids FROM public.w2;
SELECT bool_and(ok) AS verified FROM tools.verify(:run);

-- Workers take jobs by priority, not by job id: ids follow the
-- configuration (w1's two parts first), and w2 comes first now.
UPDATE tools.config SET priority = 0 WHERE target = 'public.w2'::regclass;
SELECT statement, target FROM tools.run();
SELECT max(run_id) AS run2 FROM tools.run \gset
SELECT tools.launch(:run2, workers => 1);
SELECT target, state FROM tools.wait(:run2);
SELECT array_agg(format('%s:%s', j.job_id, c.target) ORDER BY j.ts) AS started
  FROM tools.job j JOIN tools.config c USING (config_id) WHERE j.run_id = :run2;

-- Workers connect as the role that launches them: one that cannot log in
-- is refused before any worker starts.
CREATE ROLE regress_tools_nologin NOLOGIN;
GRANT USAGE ON SCHEMA tools TO regress_tools_nologin;
GRANT SELECT ON ALL TABLES IN SCHEMA tools TO regress_tools_nologin;
SET ROLE regress_tools_nologin;
SELECT tools.launch(:run);
RESET ROLE;
REVOKE ALL ON SCHEMA tools FROM regress_tools_nologin;
REVOKE ALL ON ALL TABLES IN SCHEMA tools FROM regress_tools_nologin;
DROP ROLE regress_tools_nologin;

DROP TABLE source.w1, source.w2, public.w1, public.w2, public.w_fail;
DROP FUNCTION public.fail_at();
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
