-- Timeouts mid-batch: the batch rolls back, the job is failed, a rerun
-- resumes exactly.  A trigger holds row 55 long past statement_timeout.
CREATE TABLE source.slow (id int PRIMARY KEY, v text);
INSERT INTO source.slow SELECT g, 'v' || g FROM generate_series(1, 100) g;
CREATE TABLE public.slow (id int, v text);
CREATE FUNCTION public.slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 55 AND current_setting('tools_test.slow', true) = 'on' THEN
    PERFORM pg_sleep(60);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER slow_row AFTER INSERT ON public.slow FOR EACH ROW EXECUTE FUNCTION public.slow_row();
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.slow', 'public.slow', 'id', 10);
SELECT statement FROM tools.run();

SET tools_test.slow = on;
SET statement_timeout = '1s';
CALL tools.start(1);
RESET statement_timeout;
RESET tools_test.slow;
SELECT state, lastseq, rows, error FROM tools.job WHERE job_id = 1;
SELECT count(*), max(id) FROM public.slow;

CALL tools.start(1);
SELECT state, lastseq, rows, error FROM tools.job WHERE job_id = 1;
SELECT count(*), count(DISTINCT id), max(id) FROM public.slow;

DROP FUNCTION public.slow_row() CASCADE;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
