-- tools.progress: each job's rows against its total, percent, and while it
-- runs its recent rate and time left.  Totals are the planner's estimates
-- of each job's range, set when the run is planned; tools.estimate() sets
-- them again, exactly when asked.  Rows count committed batches only, so a
-- failure and its resume never count a row twice.
\set VERBOSITY terse
CREATE TABLE source.g (id int PRIMARY KEY, v text);
INSERT INTO source.g SELECT g, 'g' || g FROM generate_series(1, 3000) g;
ANALYZE source.g;
CREATE TABLE public.g (id int PRIMARY KEY, v text);
CREATE FUNCTION public.fail_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id::text = current_setting('tools_test.fail_at', true) THEN
    RAISE EXCEPTION 'row % refused', NEW.id;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fail_at BEFORE INSERT ON public.g
  FOR EACH ROW EXECUTE FUNCTION public.fail_at();
INSERT INTO tools.config (source, target, pkey, batchsize, trunc, parts)
VALUES ('source.g', 'public.g', 'id', 250, true, 3);
SELECT statement FROM tools.run();

-- Planned: each part's estimate is about a third of the table.
SELECT run_id, job_id, target, state, rows, total BETWEEN 900 AND 1100 AS about_a_third,
       percent, rate, eta
  FROM tools.progress ORDER BY job_id;
SELECT job_id, total FROM tools.estimate(exact => true) ORDER BY job_id;
SELECT sum(total) FROM tools.job;

-- Job 1 fails in its third batch: two batches kept, half of its rows.
SET tools_test.fail_at = '600';
CALL tools.start(1);
SELECT job_id, state, rows, total, percent, rate, eta FROM tools.progress WHERE job_id = 1;
RESET tools_test.fail_at;
CALL tools.start(1);
SELECT job_id, state, rows, total, percent, rate > 0 AS rate, eta FROM tools.progress WHERE job_id = 1;
SELECT count(*) AS target_rows FROM public.g;

-- A job left running by a process that died (no process holds its lock)
-- is failed, with no rate and no time left.
UPDATE tools.job SET state = 'running', rows = 100, rate = 1000 WHERE job_id = 2;
SELECT job_id, state, rows, percent, rate, eta FROM tools.progress WHERE job_id = 2;
UPDATE tools.job SET state = 'pending', rows = 0, rate = NULL WHERE job_id = 2;

-- A total that cannot be estimated stays NULL at plan time (the job's start
-- says what is wrong); tools.estimate() raises the error.
INSERT INTO tools.config (source, target, pkey, condition)
VALUES ('source.g', 'public.g', 'id', 'no_such_column > 0');
SELECT statement FROM tools.run('{public.g}');
SELECT job_id, total, percent FROM tools.progress WHERE run_id = 2 ORDER BY job_id;
\set VERBOSITY default
SELECT * FROM tools.estimate(2);
\set VERBOSITY terse
SELECT * FROM tools.estimate(42);

DROP TABLE source.g, public.g;
DROP FUNCTION public.fail_at();
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
