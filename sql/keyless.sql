-- A source without a key (pkey NULL), as logs, staging and audit tables
-- are: its rows are copied in one batch, whatever batchsize says.  A
-- failure writes nothing, so the next call copies everything again,
-- exactly; a completed job copies nothing more; a new run copies again
-- only if it empties the target first.  Progress and verify work on it.
CREATE TABLE source.log (at timestamptz, msg text);
INSERT INTO source.log
  SELECT '2026-01-01'::timestamptz + g * interval '1 minute', 'line ' || (g % 50)
    FROM generate_series(1, 3000) g;
-- Rows that are equal: nothing tells them apart but their number.
INSERT INTO source.log SELECT '2026-01-01', 'same' FROM generate_series(1, 7);
CREATE TABLE public.log (at timestamptz, msg text);
INSERT INTO tools.config (source, target, pkey, batchsize, condition)
VALUES ('source.log', 'public.log', NULL, 100, 'public.fail_at(msg)');
CREATE FUNCTION public.fail_at(msg text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF msg = current_setting('tools_test.fail_at', true) THEN
    RAISE EXCEPTION 'failing at %', msg;
  END IF;
  RETURN true;
END $$;
SELECT statement FROM tools.run();
SELECT job_id, total FROM tools.estimate(1, exact => true);
SET tools_test.fail_at = 'line 42';
-- (The failing statement's text, which differs with the path the job
-- takes, is left out of the error's context.)
\set SHOW_CONTEXT never
CALL tools.start(1);
\set SHOW_CONTEXT errors
SELECT state, rows, error, (SELECT count(*) FROM public.log) AS target_rows FROM tools.job;
RESET tools_test.fail_at;
CALL tools.start(1);
SELECT state, rows, lastseq, lastkey, (SELECT count(*) FROM public.log) AS target_rows FROM tools.job;
-- Completed: a new call copies nothing more.
CALL tools.start(1);
SELECT state, rows, (SELECT count(*) FROM public.log) AS target_rows FROM tools.job;
SELECT job_id, source_rows, target_rows, ok FROM tools.verify(1);
SELECT state, rows, total, percent FROM tools.progress;
SELECT count(*) FROM ((TABLE source.log EXCEPT ALL TABLE public.log)
  UNION ALL (TABLE public.log EXCEPT ALL TABLE source.log)) d;

-- A new run that does not empty the target would copy every row again:
-- refused, saying what to set.
SELECT statement FROM tools.run();
UPDATE tools.config SET trunc = true;
SELECT statement FROM tools.run();
CALL tools.start(2);
SELECT job_id, state, rows, (SELECT count(*) FROM public.log) AS target_rows FROM tools.job ORDER BY job_id;
SELECT job_id, ok FROM tools.verify();

-- No key, no parts.
UPDATE tools.config SET parts = 2;
SELECT statement FROM tools.run();

-- A keyed configuration whose key is taken away after a position was
-- recorded is refused, as any changed key.
CREATE TABLE public.log2 (at timestamptz, msg text);
INSERT INTO tools.config (source, target, pkey, batchsize)
VALUES ('source.log', 'public.log2', 'at', 1000);
SELECT statement FROM tools.run('{public.log2}');
CALL tools.start(3);
UPDATE tools.config SET pkey = NULL WHERE target = 'public.log2'::regclass;
CALL tools.start(3);

DROP TABLE source.log, public.log, public.log2;
DROP FUNCTION public.fail_at(text);
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
