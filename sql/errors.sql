-- Bad input: a clear error naming the object, and nothing lost.
\set VERBOSITY default
CREATE TABLE source.e (id int PRIMARY KEY, v text, t text, k int, p point);
INSERT INTO source.e SELECT g, 'v' || g, 't' || g, g, point(g, g) FROM generate_series(1, 20) g;
CREATE TABLE public.e (id int, v text);
INSERT INTO public.e VALUES (0, 'kept');
INSERT INTO tools.config (source, target, pkey, batchsize, trunc) VALUES ('source.e', 'public.e', 'id', 5, true);
SELECT statement FROM tools.run();

-- Targets that are not table names.
SELECT statement FROM tools.run('{""}');
SELECT statement FROM tools.run('{"a.b.c.d"}');

-- Unknown job, NULL job.
CALL tools.start(42);
CALL tools.start(NULL);

-- Inside a transaction block the job cannot commit its batches: refused.
BEGIN;
CALL tools.start(1);
ROLLBACK;
DO $$ BEGIN CALL tools.start(1); END $$;   -- a DO block at top level is non-atomic: allowed
SELECT state, rows FROM tools.job WHERE job_id = 1;
TRUNCATE public.e;
INSERT INTO public.e VALUES (0, 'kept');
SELECT statement FROM tools.run();
CREATE FUNCTION public.start_from_function() RETURNS void LANGUAGE plpgsql AS
$$ BEGIN CALL tools.start(2); END $$;
SELECT public.start_from_function();

-- Each failure below leaves the job failed with the message, and the target
-- untouched: the run's emptying belongs to the job's failed first step.
CREATE FUNCTION public.check_job() RETURNS TABLE (state tools.state, error text, target_rows bigint)
LANGUAGE sql AS $$
  SELECT j.state, j.error, (SELECT count(*) FROM public.e)
    FROM tools.job j WHERE j.job_id = 2 $$;

-- Key column not in the source.
UPDATE tools.config SET pkey = 'nosuch';
CALL tools.start(2);
SELECT * FROM public.check_job();
-- Key column not in the target.
UPDATE tools.config SET pkey = 'k';
CALL tools.start(2);
-- Key of a type without an order.
UPDATE tools.config SET pkey = 'p';
CALL tools.start(2);
SELECT * FROM public.check_job();
-- Keys that are not a list of columns.
UPDATE tools.config SET pkey = 'id, id';
CALL tools.start(2);
UPDATE tools.config SET pkey = 'id,';
CALL tools.start(2);
-- A condition with a syntax error, and one naming an unknown column.
UPDATE tools.config SET pkey = 'id', condition = 'id >';
CALL tools.start(2);
SELECT * FROM public.check_job();
UPDATE tools.config SET condition = 'nosuch = 1';
CALL tools.start(2);
-- Column types that do not convert.
UPDATE tools.config SET condition = NULL;
ALTER TABLE public.e ALTER COLUMN v TYPE int USING NULL;
CALL tools.start(2);
SELECT * FROM public.check_job();
ALTER TABLE public.e ALTER COLUMN v TYPE text;
-- No column in common: the key is missing first.
CREATE TABLE public.other (x int, y int);
UPDATE tools.config SET target = 'public.other';
CALL tools.start(2);
UPDATE tools.config SET target = 'public.e';
-- Source dropped after configuration.
CREATE TABLE source.gone (id int);
UPDATE tools.config SET source = 'source.gone';
DROP TABLE source.gone;
CALL tools.start(2);
UPDATE tools.config SET source = 'source.e';
-- Fixed: the same call now runs the job.
CALL tools.start(2);
SELECT * FROM public.check_job();
SELECT count(*), count(DISTINCT id) FROM public.e;

-- A trunc target that a foreign key references: TRUNCATE refuses, nothing changes.
ALTER TABLE public.e ADD PRIMARY KEY (id);
CREATE TABLE public.e_ref (id int REFERENCES public.e (id));
INSERT INTO public.e_ref VALUES (1);
SELECT statement FROM tools.run();
CALL tools.start(3);
SELECT state, error, (SELECT count(*) FROM public.e) AS target_rows FROM tools.job WHERE job_id = 3;
DROP TABLE public.e_ref;

-- A target view that cannot take inserts.
CREATE VIEW public.e_view AS SELECT DISTINCT id, v FROM public.e;
UPDATE tools.config SET target = 'public.e_view', trunc = false;
SELECT statement FROM tools.run();
CALL tools.start(4);
SELECT state, error FROM tools.job WHERE job_id = 4;
UPDATE tools.config SET target = 'public.e', trunc = true;
DROP VIEW public.e_view;

-- Relations renamed after configuration: config follows them (regclass).
ALTER TABLE source.e RENAME TO e_renamed;
SELECT source FROM tools.config;
ALTER TABLE source.e_renamed RENAME TO e;

-- A job of an earlier run, once a later run has copied its target: resuming
-- it would copy rows twice, so it is refused and the target is unchanged.
SELECT statement FROM tools.run();
CALL tools.start(5);
CALL tools.start(2);
SELECT job_id, state, error, (SELECT count(*) FROM public.e) AS target_rows FROM tools.job WHERE job_id = 2;

-- Configuration deleted after planning: the job cannot run.
SELECT statement FROM tools.run();
DELETE FROM tools.config;
CALL tools.start(6);
SELECT job_id, config_id, state, error FROM tools.job WHERE job_id = 6;

DROP FUNCTION public.check_job(), public.start_from_function();
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;

-- A condition is one expression: one that would escape its parentheses
-- (and take the key range out of the batches, which then copy the same
-- rows for ever into a target without a key), or hide the rest of the
-- statement behind a comment, is refused before anything is copied.
CREATE TABLE public.nokey (id int, v text);
INSERT INTO tools.config (source, target, pkey, batchsize, condition)
VALUES ('source.e', 'public.nokey', 'id', 5, 'true) OR (true');
SELECT statement FROM tools.run();
CALL tools.start(1);
UPDATE tools.config SET condition = 'id > 2 --';
CALL tools.start(1);
UPDATE tools.config SET condition = 'true AS x';
CALL tools.start(1);
UPDATE tools.config SET condition = '1 = 1 FROM source.e';
CALL tools.start(1);
SELECT count(*) FROM public.nokey;
-- Comments, subqueries and line breaks inside one expression are fine.
UPDATE tools.config SET condition = 'id > (SELECT min(id) FROM source.e) /* not 1 */ -- ok
';
CALL tools.start(1);
SELECT state, rows, (SELECT count(*) FROM public.nokey) AS target_rows FROM tools.job;

-- A key changed after a job recorded its position: the position means
-- nothing for the new key, so the job (even completed) and a new run that
-- would continue from it are refused, and the target keeps each row once.
UPDATE tools.config SET pkey = 'v';
CALL tools.start(1);
SELECT statement FROM tools.run();
SELECT count(*), count(DISTINCT id) FROM public.nokey;
-- Set back, the key works again: nothing new to copy.
UPDATE tools.config SET pkey = 'id';
SELECT statement FROM tools.run();
CALL tools.start(2);
SELECT count(*), count(DISTINCT id) FROM public.nokey;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;

-- A source that is the target in disguise: a view over it, or over a join
-- with it.  With trunc the job would empty its own source; without, double
-- every row.  Refused, and the target keeps its rows.
CREATE VIEW public.nokey_view AS SELECT * FROM public.nokey;
CREATE VIEW public.nokey_join AS
  SELECT e.id, e.v FROM source.e AS e JOIN public.nokey AS n USING (id);
INSERT INTO tools.config (source, target, pkey, trunc)
VALUES ('public.nokey_view', 'public.nokey', 'id', true);
SELECT statement FROM tools.run();
CALL tools.start(1);
UPDATE tools.config SET source = 'public.nokey_join', trunc = false;
CALL tools.start(1);
SELECT count(*) FROM public.nokey;
-- A view over a function that reads the target: the plan does not show
-- it, one row of the view read under the job's guard does, before the
-- target is emptied.
CREATE FUNCTION public.nokey_rows() RETURNS SETOF public.nokey
LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY SELECT * FROM public.nokey; END $$;
CREATE VIEW public.nokey_func AS SELECT * FROM public.nokey_rows();
UPDATE tools.config SET source = 'public.nokey_func', trunc = true;
CALL tools.start(1);
SELECT count(*) FROM public.nokey;
-- A function that reads the target for some rows only: the batch that
-- reads such a row fails, and none of its rows is written; the batches
-- before it stay.
CREATE FUNCTION public.nokey_v(id int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF id > 15 THEN
    PERFORM FROM public.e_func_target;
  END IF;
  RETURN 'v' || id;
END $$;
CREATE TABLE public.e_func_target (LIKE public.nokey);
CREATE VIEW public.e_func AS SELECT id, public.nokey_v(id) AS v FROM source.e;
UPDATE tools.config SET source = 'public.e_func', target = 'public.e_func_target',
  trunc = false, batchsize = 5;
\set SHOW_CONTEXT never
CALL tools.start(1);
\set SHOW_CONTEXT errors
SELECT state, rows, lastkey, (SELECT count(*) FROM public.e_func_target) AS target_rows
FROM tools.job;
-- The same function reading another table is no disguise.
CREATE OR REPLACE FUNCTION public.nokey_v(id int) RETURNS text
LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT v FROM source.e AS e WHERE e.id = $1); END $$;
CALL tools.start(1);
SELECT state, rows, (SELECT count(*) FROM public.e_func_target) AS target_rows
FROM tools.job;
-- A target whose own trigger and foreign key read it is no disguise.
CREATE TABLE public.tree (id int PRIMARY KEY, v text, parent int REFERENCES public.tree);
CREATE FUNCTION public.tree_parent() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.parent := (SELECT pg_catalog.max(id) FROM public.tree); RETURN NEW; END $$;
CREATE TRIGGER tree_parent BEFORE INSERT ON public.tree
  FOR EACH ROW EXECUTE FUNCTION public.tree_parent();
UPDATE tools.config SET source = 'source.e', target = 'public.tree', trunc = true;
SELECT statement FROM tools.run();
CALL tools.start(2);
SELECT state, rows, (SELECT count(parent) FROM public.tree) AS with_parent
FROM tools.job WHERE job_id = 2;
DROP TABLE public.tree;
DROP FUNCTION public.tree_parent();
DROP VIEW public.e_func, public.nokey_func;
DROP FUNCTION public.nokey_v(int), public.nokey_rows();
DROP TABLE public.e_func_target;
-- The same relation under another spelling is refused when configured.
INSERT INTO tools.config (source, target, pkey)
VALUES ('"public"."nokey"', 'nokey', 'id');
DROP VIEW public.nokey_view, public.nokey_join;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;

-- A target whose rule replaces every INSERT: the rows would go nowhere
-- the job counts them.
CREATE TABLE public.ruled (id int, v text);
CREATE RULE nothing AS ON INSERT TO public.ruled DO INSTEAD NOTHING;
INSERT INTO tools.config (source, target, pkey) VALUES ('source.e', 'public.ruled', 'id');
SELECT statement FROM tools.run();
CALL tools.start(1);
-- verify() and estimate() of a run whose configuration was deleted: the
-- jobs cannot be described any more, and they say so.
DELETE FROM tools.config;
SELECT * FROM tools.verify(1);
SELECT * FROM tools.estimate(1);
DROP TABLE public.ruled;
DROP TABLE public.nokey;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
