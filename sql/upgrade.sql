-- ALTER EXTENSION tools UPDATE from 1.0 keeps the configuration, the runs and
-- the jobs, and a job that 1.0 left half done resumes where it stopped.
\set VERBOSITY default
DROP EXTENSION tools;
CREATE EXTENSION tools VERSION '1.0';
CREATE TABLE source.u (id int PRIMARY KEY, v text);
INSERT INTO source.u SELECT g, 'v' || g FROM generate_series(1, 1000) g;
CREATE TABLE public.u (id int PRIMARY KEY, v text);
INSERT INTO public.u SELECT * FROM source.u WHERE id <= 400;
-- What 1.0 recorded for a job stopped at key 400 (its run() and start()
-- are the C functions of this build, so the rows are written as 1.0 did).
INSERT INTO tools.config (source, target, pkey, priority, batchsize, trunc)
VALUES ('source.u', 'public.u', 'id', 5, 100, false);
INSERT INTO tools.run DEFAULT VALUES;
INSERT INTO tools.job (run_id, config_id, lastseq, rows, ts, state, error)
VALUES (1, 1, 400, 400, LOCALTIMESTAMP, 'failed', 'canceling statement due to user request');

ALTER EXTENSION tools UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'tools';
SELECT config_id, source, target, pkey, priority, batchsize, trunc, parts, defer_indexes FROM tools.config;
SELECT run_id, job_id, config_id, lastseq, lastkey, rows, state, error, lower, upper FROM tools.job;

CALL tools.start(1);
SELECT job_id, state, lastseq, lastkey, rows FROM tools.job;
SELECT count(*), count(DISTINCT id), max(id) FROM public.u;

-- The configuration is still what pg_dump keeps.
SELECT c.relname AS dumped
  FROM pg_extension x, unnest(x.extconfig) AS cfg(oid) JOIN pg_class c ON c.oid = cfg.oid
 WHERE x.extname = 'tools' ORDER BY c.relname;

DROP TABLE source.u, public.u;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
