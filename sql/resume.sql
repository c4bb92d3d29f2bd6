-- Resuming: the same CALL again, a new run, a failure fixed then resumed.
CREATE TABLE source.events (id bigint PRIMARY KEY, payload text);
INSERT INTO source.events SELECT g, 'event ' || g FROM generate_series(1, 500) g;
CREATE TABLE public.events (id bigint, payload text);   -- no unique key: a duplicate would show
INSERT INTO tools.config (source, target, pkey, batchsize, trunc)
VALUES ('source.events', 'public.events', 'id', 100, false);

SELECT statement FROM tools.run();
CALL tools.start(1);
SELECT state, lastseq, rows FROM tools.job ORDER BY job_id;

-- New source rows: calling the same job again copies only them.
INSERT INTO source.events SELECT g, 'event ' || g FROM generate_series(501, 650) g;
CALL tools.start(1);
SELECT state, lastseq, rows FROM tools.job ORDER BY job_id;
-- Nothing new: a no-op.
CALL tools.start(1);
SELECT state, lastseq, rows FROM tools.job ORDER BY job_id;
SELECT count(*), count(DISTINCT id), max(id) FROM public.events;

-- A new run of a non-trunc config continues above the highest key its
-- earlier jobs reached.
INSERT INTO source.events SELECT g, 'event ' || g FROM generate_series(651, 700) g;
SELECT statement FROM tools.run();
CALL tools.start(2);
SELECT job_id, state, lastseq, rows FROM tools.job ORDER BY job_id;
SELECT count(*), count(DISTINCT id) FROM public.events;

-- A failure: the batch that fails rolls back, the batches before it stay,
-- the job says failed with the error, and the caller gets the original error.
INSERT INTO source.events SELECT g, 'event ' || g FROM generate_series(701, 1000) g;
UPDATE source.events SET payload = NULL WHERE id = 870;
ALTER TABLE public.events ADD CONSTRAINT payload_present CHECK (payload IS NOT NULL);
SELECT statement FROM tools.run();
\set VERBOSITY default
-- (The failing statement's text, which differs with the path the job
-- takes, is left out of the error's context.)
\set SHOW_CONTEXT never
CALL tools.start(3);
\set SHOW_CONTEXT errors
SELECT job_id, state, lastseq, rows, error FROM tools.job WHERE job_id = 3;
SELECT count(*), count(DISTINCT id), max(id) FROM public.events;

-- Fix, then the same CALL resumes at the failed batch.
ALTER TABLE public.events DROP CONSTRAINT payload_present;
CALL tools.start(3);
SELECT job_id, state, lastseq, rows, error FROM tools.job WHERE job_id = 3;
SELECT count(*), count(DISTINCT id), max(id) FROM public.events;
SELECT count(*) AS missing FROM source.events s
 WHERE NOT EXISTS (SELECT FROM public.events t WHERE t.id = s.id);

-- A job's rows add up to what it copied, across its calls.
SELECT sum(rows) AS job_rows, (SELECT count(*) FROM public.events) AS target_rows FROM tools.job;

-- Deferred constraints are checked with each batch, so a violation fails the
-- batch like any other error instead of breaking the commit.
CREATE TABLE public.parent (id bigint PRIMARY KEY);
CREATE TABLE public.child (id bigint, payload text,
  CONSTRAINT child_parent FOREIGN KEY (id) REFERENCES public.parent DEFERRABLE INITIALLY DEFERRED);
INSERT INTO public.parent SELECT g FROM generate_series(1, 150) g;
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.events', 'public.child', 'id', 100);
SELECT statement FROM tools.run('{child}');
CALL tools.start(4);
SELECT job_id, state, lastseq, rows, error FROM tools.job WHERE job_id = 4;
SELECT count(*) FROM public.child;

TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
