-- tools.run(): one job per config row of the chosen targets, returned as
-- CALL statements in priority order.
CREATE TABLE source.a (id int PRIMARY KEY);
CREATE TABLE source.b (id int PRIMARY KEY);
CREATE TABLE source.c (id int PRIMARY KEY);
CREATE TABLE public.a (id int);
CREATE TABLE public.b (id int);
CREATE TABLE public.c (id int);
CREATE TABLE public.unconfigured (id int);

-- Nothing configured yet: an error, and no run is recorded.
SELECT * FROM tools.run();
SELECT count(*) AS runs FROM tools.run;

INSERT INTO tools.config (source, target, pkey, priority, condition) VALUES
  ('source.a', 'public.a', 'id', 100, NULL),
  ('source.b', 'public.b', 'id', 1, 'id % 2 = 0'),
  ('source.b', 'public.b', 'id', 1, 'id % 2 = 1'),
  ('source.c', 'public.c', 'id', NULL, NULL);

-- Every target: by priority, unset priority last, then config_id.
SELECT * FROM tools.run();
SELECT j.run_id, j.job_id, j.config_id, j.lastseq, j.rows, j.elapsed, j.ts, j.state, j.error
  FROM tools.job j ORDER BY j.job_id;

-- The targets filter resolves names like regclass input.
SELECT * FROM tools.run('{a}');
SELECT * FROM tools.run(ARRAY['public.b', 'C']);
SELECT * FROM tools.run('{b,public.b}');   -- the same target twice: once
SELECT * FROM tools.run(targets => '{}');

-- Bad input: an error naming the problem, and nothing planned.
SELECT count(*) AS runs_before FROM tools.run;
SELECT * FROM tools.run('{nosuch}');
SELECT * FROM tools.run('{a,unconfigured}');
SELECT * FROM tools.run(NULL);
SELECT * FROM tools.run('{a,NULL}');
SELECT count(*) AS runs_after FROM tools.run;

-- Statements name the extension's schema: they work whatever search_path.
SET search_path = pg_catalog;
SELECT statement FROM tools.run('{public.a}');
RESET search_path;

TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
DROP TABLE source.a, source.b, source.c, public.a, public.b, public.c, public.unconfigured;
