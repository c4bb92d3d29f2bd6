-- A table cut into parts by tools.run(): parts = N plans N jobs, each over
-- its own range [lower, upper) of the key's first column, cut from the
-- column's statistics (or a sample of the table where it has none); the
-- first range is open below, the last open above, and together they hold
-- every row.
\set VERBOSITY default
CREATE TABLE source.p (id bigint PRIMARY KEY, grp int NOT NULL, t text NOT NULL);
INSERT INTO source.p SELECT g, g % 5, md5(g::text) FROM generate_series(1, 20000) g;
ANALYZE source.p;
CREATE TABLE public.p (t text, id bigint UNIQUE, grp int);
INSERT INTO public.p VALUES ('left over', -1, 0);
INSERT INTO tools.config (source, target, pkey, batchsize, trunc, parts)
VALUES ('source.p', 'public.p', 'id', 1000, true, 4);
SELECT statement FROM tools.run();
SELECT job_id, lower, upper FROM tools.job ORDER BY job_id;

-- Ranges follow each other without gap or overlap, in the order of the jobs.
SELECT bool_and(upper::bigint = next_lower::bigint) AS contiguous,
       bool_and(lower::bigint < upper::bigint) AS ordered
  FROM (SELECT lower, upper, lead(lower) OVER (ORDER BY job_id) AS next_lower
          FROM tools.job) r
 WHERE next_lower IS NOT NULL;

-- The parts run in any order, each reading only its range: the target is
-- emptied once, by the first to start, and ends equal to the source.
CALL public.flush_stats();
SELECT seq_tup_read + idx_tup_fetch AS read_before
  FROM pg_stat_user_tables WHERE relid = 'source.p'::regclass \gset
CALL tools.start(3);
CALL tools.start(1);
CALL tools.start(4);
CALL tools.start(2);
CALL public.flush_stats();
SELECT pg_stat_clear_snapshot();
SELECT seq_tup_read + idx_tup_fetch - :read_before BETWEEN 2 * 20000 AND 2 * 20000 + 100 AS read_twice
  FROM pg_stat_user_tables WHERE relid = 'source.p'::regclass;
SELECT job_id, state, rows,
       rows = (SELECT count(*) FROM source.p
                WHERE (lower IS NULL OR id >= lower::bigint)
                  AND (upper IS NULL OR id < upper::bigint)) AS rows_of_its_range
  FROM tools.job ORDER BY job_id;
SELECT count(*), count(DISTINCT id), min(id), max(id) FROM public.p;

-- A part resumes on its own: a failure in the third part keeps its batches
-- and the other parts, and the same call finishes it.
ALTER TABLE public.p ADD CONSTRAINT not_12345 CHECK (id <> 12345) NOT VALID;
SELECT statement FROM tools.run();
CALL tools.start(5);
CALL tools.start(6);
-- (The failing statement's text, which differs with the path the job
-- takes, is left out of the error's context.)
\set SHOW_CONTEXT never
CALL tools.start(7);
\set SHOW_CONTEXT errors
CALL tools.start(8);
SELECT job_id, state, lastkey, rows FROM tools.job WHERE run_id = 2 ORDER BY job_id;
ALTER TABLE public.p DROP CONSTRAINT not_12345;
SELECT format('CALL tools.start(%s)', job_id) FROM tools.job
 WHERE run_id = 2 AND state = 'failed' \gexec
SELECT sum(rows) AS job_rows, (SELECT count(*) FROM public.p) AS target_rows,
       (SELECT count(DISTINCT id) FROM public.p) AS distinct_ids
  FROM tools.job WHERE run_id = 2;

-- With a condition, a composite key and no statistics: the table is sampled,
-- the cuts are on the key's first column, and the condition applies to every
-- part.
CREATE TABLE source.q (grp int NOT NULL, id int NOT NULL, PRIMARY KEY (grp, id));
INSERT INTO source.q SELECT g % 50, g FROM generate_series(1, 20000) g;
CREATE TABLE public.q (grp int, id int PRIMARY KEY);
INSERT INTO tools.config (source, target, pkey, condition, batchsize, trunc, parts)
VALUES ('source.q', 'public.q', 'grp, id', 'id % 3 = 0', 500, true, 3);
SELECT statement FROM tools.run('{public.q}');
SELECT count(*) AS parts, count(*) FILTER (WHERE lower IS NULL) AS open_below,
       count(*) FILTER (WHERE upper IS NULL) AS open_above
  FROM tools.job WHERE run_id = 3;
SELECT format('CALL tools.start(%s)', job_id) FROM tools.job WHERE run_id = 3 \gexec
SELECT count(*) = (SELECT count(*) FROM source.q WHERE id % 3 = 0) AS all_copied,
       count(*) FILTER (WHERE id % 3 <> 0) AS outside_condition
  FROM public.q;

-- A configuration that does not truncate continues in the parts of its
-- latest run, each job where its part stopped; changing parts takes effect
-- on a run that truncates.
INSERT INTO source.p SELECT g, g % 5, md5(g::text) FROM generate_series(20001, 20500) g;
UPDATE tools.config SET trunc = false, parts = 2 WHERE target = 'public.p'::regclass;
SELECT statement FROM tools.run('{public.p}');
SELECT j.lower, j.upper, j.lastkey FROM tools.job j WHERE run_id = 4 ORDER BY job_id;
SELECT format('CALL tools.start(%s)', job_id) FROM tools.job WHERE run_id = 4 \gexec
SELECT job_id, state, rows FROM tools.job WHERE run_id = 4 ORDER BY job_id;
SELECT count(*), count(DISTINCT id), max(id) FROM public.p;

-- NULL keys belong to the part open below: its job refuses them, saying how
-- many, while the other parts copy their ranges.
CREATE TABLE source.n (id int, v text);
INSERT INTO source.n SELECT g, 'v' FROM generate_series(1, 3000) g;
INSERT INTO source.n VALUES (NULL, 'no key');
ANALYZE source.n;
CREATE TABLE public.n (id int, v text);
INSERT INTO tools.config (source, target, pkey, batchsize, parts) VALUES ('source.n', 'public.n', 'id', 500, 2);
SELECT statement FROM tools.run('{public.n}') \gexec
SELECT job_id, state, rows, error FROM tools.job WHERE run_id = 5 ORDER BY job_id;

-- A key with too few values for the parts asked: fewer parts, and a notice.
CREATE TABLE source.few (id int PRIMARY KEY);
INSERT INTO source.few VALUES (1), (2);
ANALYZE source.few;
CREATE TABLE public.few (id int);
INSERT INTO tools.config (source, target, pkey, parts) VALUES ('source.few', 'public.few', 'id', 8);
SELECT statement FROM tools.run('{public.few}');

DROP TABLE source.p, public.p, source.q, public.q, source.n, public.n, source.few, public.few;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
