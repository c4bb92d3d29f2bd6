-- trunc: the target is emptied once per run, before the first of the run's
-- jobs writes into it, never after a sibling committed rows.
CREATE TABLE source.items (id int PRIMARY KEY, v int);
INSERT INTO source.items SELECT g, g FROM generate_series(1, 100) g;
CREATE TABLE public.items (id int, v int);
INSERT INTO public.items VALUES (-1, -1), (-2, -2);   -- rows from before the run

INSERT INTO tools.config (source, target, pkey, condition, batchsize, trunc) VALUES
  ('source.items', 'public.items', 'id', 'id % 2 = 0', 10, true),
  ('source.items', 'public.items', 'id', 'id % 2 = 1', 10, true);
SELECT statement FROM tools.run();

-- The first job empties the target, then copies its half.
CALL tools.start(1);
SELECT count(*), min(id) FROM public.items;
-- Its sibling must not empty it again.
CALL tools.start(2);
SELECT count(*), count(DISTINCT id), min(id), max(id) FROM public.items;
-- Nor does resuming either job.
CALL tools.start(1);
CALL tools.start(2);
SELECT count(*), count(DISTINCT id) FROM public.items;
SELECT job_id, state, lastseq, rows FROM tools.job ORDER BY job_id;

-- A new run empties the target again and copies everything afresh.
INSERT INTO public.items VALUES (-3, -3);
SELECT statement FROM tools.run();
CALL tools.start(4);
CALL tools.start(3);
SELECT count(*), count(DISTINCT id), min(id) FROM public.items;
SELECT job_id, state, lastseq, rows FROM tools.job ORDER BY job_id;

-- A trunc job that fails before copying leaves the target as it was: the
-- emptying belongs to the job's first, failed, step.
UPDATE tools.config SET condition = 'no_such_column = 1' WHERE config_id = 1;
SELECT statement FROM tools.run();
CALL tools.start(5);
SELECT count(*) FROM public.items;
-- The sibling starts first now: it empties the target and copies its half;
-- the fixed job then adds its half without emptying again.
CALL tools.start(6);
SELECT count(*) FROM public.items;
UPDATE tools.config SET condition = 'id % 2 = 0' WHERE config_id = 1;
CALL tools.start(5);
SELECT count(*), count(DISTINCT id) FROM public.items;

-- A trunc config and a non-trunc config on one target: one emptying per run,
-- by whichever job starts first, and the non-trunc job does not continue
-- from earlier runs, since its rows were emptied.
UPDATE tools.config SET trunc = false WHERE config_id = 2;
SELECT statement FROM tools.run();
CALL tools.start(8);
CALL tools.start(7);
SELECT count(*), count(DISTINCT id) FROM public.items;
SELECT job_id, state, lastseq, rows FROM tools.job WHERE run_id = 4 ORDER BY job_id;

TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
