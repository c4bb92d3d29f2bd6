-- tools.repair(): after the copy, the source changed (the application kept
-- writing until the cutover), and only the rows that differ are written.
-- A job with an integer key over a table reads the rows written on the
-- source since its copy began, and compares the keys of both sides by
-- their counts in ranges (source.r); others, or with all_rows, read both
-- sides in chunks of keys and row hashes, and merge them (source.rc).
CREATE TABLE source.r (id int PRIMARY KEY, v text, n int);
INSERT INTO source.r SELECT g, md5(g::text), g FROM generate_series(1, 20000) g;
CREATE TABLE public.r (id int PRIMARY KEY, v text, n int);
CREATE TABLE source.rc (grp text, id int, v text, PRIMARY KEY (grp, id));
INSERT INTO source.rc SELECT 'g' || (g % 3), g, md5(g::text) FROM generate_series(1, 6000) g;
CREATE TABLE public.rc (grp text, id int, v varchar(40));  -- another type: cast
CREATE TABLE public.rk (id int, v text, n int);
CREATE TABLE public.rp (id int, v text, n int);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES
  ('source.r', 'public.r', 'id', 5000),
  ('source.rc', 'public.rc', 'grp, id', 1000),
  ('source.r', 'public.rk', NULL, NULL),
  ('source.r', 'public.rp', 'id', 5000);
SELECT statement FROM tools.run();
CALL tools.start(1);
CALL tools.start(2);
CALL tools.start(3);

-- Nothing changed yet: nothing is copied again.  The keyless job has no
-- range to copy again, and the job not run yet is left to start().
CALL tools.repair();

-- The copy recorded where each table source stood when it began.
SELECT job_id, source_xmin IS NOT NULL AS source_known FROM tools.job ORDER BY job_id;

-- Rows updated, deleted and inserted below, inside and above the copied
-- keys; a row inserted on the target side, and one deleted there.
UPDATE source.r SET v = 'changed' WHERE id IN (5, 10000, 19999);
DELETE FROM source.r WHERE id BETWEEN 14000 AND 14010;
INSERT INTO source.r VALUES (20500, 'above', 1), (0, 'below', 0), (-5, 'below', -5);
INSERT INTO public.r VALUES (25000, 'extra', 0);
DELETE FROM public.r WHERE id = 3333;
DELETE FROM source.rc WHERE grp = 'g1' AND id < 100;
UPDATE source.rc SET v = 'changed' WHERE grp = 'g2' AND id = 5000;
INSERT INTO source.rc VALUES ('g0', 0, 'new'), ('g9', 1, 'new');
SELECT job_id, ok FROM tools.verify() WHERE job_id IN (1, 2) ORDER BY job_id;
CALL tools.repair();
SELECT job_id, ok FROM tools.verify() WHERE job_id IN (1, 2) ORDER BY job_id;
SELECT public.differing('source.r', 'public.r', 'id, v, n') AS r,
       public.differing('source.rc', 'public.rc', 'grp, id, v') AS rc;
-- Once more: nothing left to repair.
CALL tools.repair();

-- A job recorded before version 1.8 does not know which relation its copy
-- read: it is compared row by row, once, and recorded for the next call.
UPDATE tools.job SET source_relation = NULL WHERE job_id = 1;
SET client_min_messages = debug1;
CALL tools.repair(1);
RESET client_min_messages;
SELECT source_relation = ('source.r'::regclass::oid::bigint
       | (SELECT oid::bigint << 32 FROM pg_database WHERE datname = current_database()))
       AS recorded
  FROM tools.job WHERE job_id = 1;

-- The short way trusts the target: a row written on the target alone is
-- not seen where it leaves the counts of keys equal.  Here one row changed
-- there, its key kept; and one deleted there (3400) while the source
-- deleted another of the same range (3401), so that both sides count one
-- key less.  verify() finds them, and all_rows compares every row.
UPDATE public.r SET n = -1 WHERE id = 3333;
DELETE FROM public.r WHERE id = 3400;
DELETE FROM source.r WHERE id = 3401;
CALL tools.repair(1);
SELECT job_id, ok FROM tools.verify(1) WHERE job_id = 1;
SELECT public.differing('source.r', 'public.r', 'id, v, n') AS r;
CALL tools.repair(1, all_rows => true);
SELECT job_id, ok FROM tools.verify(1) WHERE job_id = 1;

-- Chunks of 500 rows, every row compared: dense runs of rows missing
-- (below the copied keys, where the source fills its chunk first) and
-- extra (above them, where the target does), and changed rows scattered
-- across chunks.  Each chunk that differs is said at DEBUG1.
SET tools.repair_chunk = 500;
INSERT INTO source.r SELECT -g, 'below', -g FROM generate_series(6, 705) g;
INSERT INTO public.r SELECT g, 'extra', g FROM generate_series(30001, 31200) g;
UPDATE source.r SET n = n + 1 WHERE id % 4000 = 7;
UPDATE source.rc SET v = 'again' WHERE id % 1000 = 3;
SET jit = off;
SET client_min_messages = debug1;
CALL tools.repair(1, all_rows => true);
RESET client_min_messages;
SELECT job_id, ok FROM tools.verify() WHERE job_id IN (1, 2) ORDER BY job_id;
SELECT public.differing('source.r', 'public.r', 'id, v, n') AS r,
       public.differing('source.rc', 'public.rc', 'grp, id, v') AS rc;

-- The same the short way: more rows written since than a chunk (two
-- statements read them), a key far above the others (the ranges of the
-- span hold 16,384 keys; the one of keys 0 to 16,383, which holds more than
-- 1,000 rows, differs in its count and is counted again in ranges of one
-- key), a run of rows extra on the target and one deleted on the source.
-- Both tables vacuumed, as a copy days old is: each side's keys are counted
-- range by range through the key's index.
VACUUM ANALYZE source.r, public.r;
INSERT INTO source.r SELECT -g, 'below', -g FROM generate_series(706, 1405) g;
INSERT INTO source.r VALUES (200000000, 'far', 0);
INSERT INTO public.r SELECT g, 'extra', g FROM generate_series(40001, 40300) g;
DELETE FROM source.r WHERE id BETWEEN 9000 AND 9099;
UPDATE source.r SET n = n + 1 WHERE id % 4000 = 8;
SET client_min_messages = debug1;
CALL tools.repair(1);
RESET client_min_messages;
RESET jit;
SELECT job_id, ok FROM tools.verify() WHERE job_id IN (1, 2) ORDER BY job_id;
SELECT public.differing('source.r', 'public.r', 'id, v, n') AS r;
RESET tools.repair_chunk;

-- A serial key: rows inserted on the source after the copy hold larger
-- values of its sequence; the repair sets the target's past them.
CREATE TABLE source.rs (id serial PRIMARY KEY, v text);
INSERT INTO source.rs (v) SELECT 'v' || g FROM generate_series(1, 3000) g;
CREATE TABLE public.rs (id serial PRIMARY KEY, v text);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.rs', 'public.rs', 'id', 1000);
SELECT statement FROM tools.run('{public.rs}') \gexec
INSERT INTO source.rs (v) SELECT 'new' || g FROM generate_series(1, 10) g;
CALL tools.repair();
INSERT INTO public.rs (v) VALUES ('after the cutover') RETURNING id;
DROP TABLE source.rs, public.rs;

-- A key that is not unique in the source fails the repair statement that
-- meets it, and nothing of that statement changes (row 60, changed in the
-- same statement, stays as it was).  The source has no index on its key:
-- its keys are counted in one pass, the target's through its index.
CREATE TABLE source.rd (id int, v text);
INSERT INTO source.rd SELECT g, 'v' || g FROM generate_series(1, 100) g;
CREATE TABLE public.rd (id int PRIMARY KEY, v text);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.rd', 'public.rd', 'id', 50);
SELECT statement FROM tools.run('{public.rd}') \gexec
VACUUM ANALYZE public.rd;
DELETE FROM source.rd WHERE id = 7;
SET client_min_messages = debug1;
CALL tools.repair();
RESET client_min_messages;
INSERT INTO source.rd VALUES (50, 'twice');
UPDATE source.rd SET v = 'changed' WHERE id = 60;
CALL tools.repair();
SELECT id, v FROM public.rd WHERE id IN (7, 50, 60) ORDER BY id;
DROP TABLE source.rd, public.rd;

-- The source written while the repair runs: a trigger on the target, as
-- the repair writes its first changed row, inserts into the source a row
-- above the keys' span (counted before it) and one inside it.  A later
-- chunk of the rows written since copies both; the keys of the span still
-- compare, and the target ends equal to the source.
CREATE TABLE source.rw (id int PRIMARY KEY, v text);
INSERT INTO source.rw SELECT g, 'v' || g FROM generate_series(1, 100) g;
CREATE TABLE public.rw (id int PRIMARY KEY, v text);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.rw', 'public.rw', 'id', 50);
SELECT statement FROM tools.run('{public.rw}') \gexec
CREATE FUNCTION public.write_source() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 10 THEN
    INSERT INTO source.rw VALUES (1000000, 'during'), (95, 'during');
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER write_source BEFORE UPDATE ON public.rw
  FOR EACH ROW EXECUTE FUNCTION public.write_source();
UPDATE source.rw SET v = 'changed' WHERE id IN (10, 20, 30, 40, 50);
DELETE FROM source.rw WHERE id = 95;
SET tools.repair_chunk = 2;
SET client_min_messages = debug1;
CALL tools.repair();
RESET client_min_messages;
RESET tools.repair_chunk;
SELECT public.differing('source.rw', 'public.rw', 'id, v') AS rw;
SELECT id, v FROM public.rw WHERE id IN (95, 1000000) ORDER BY id;
DROP TABLE source.rw, public.rw;
DROP FUNCTION public.write_source();

-- Parts: each part's job reads the rows written since in its own part of
-- the key range only.
CREATE TABLE source.rq (id int PRIMARY KEY, v text);
INSERT INTO source.rq SELECT g, 'v' || g FROM generate_series(1, 1000) g;
CREATE TABLE public.rq (id int PRIMARY KEY, v text);
INSERT INTO tools.config (source, target, pkey, batchsize, parts) VALUES ('source.rq', 'public.rq', 'id', 200, 2);
SELECT statement FROM tools.run('{public.rq}') \gexec
SELECT job_id, lower, upper FROM tools.job WHERE run_id = (SELECT max(run_id) FROM tools.run) ORDER BY job_id;
UPDATE source.rq SET v = 'changed' WHERE id IN (10, 20, 30, 900);
SET client_min_messages = debug1;
CALL tools.repair();
RESET client_min_messages;
SELECT public.differing('source.rq', 'public.rq', 'id, v') AS rq;
DROP TABLE source.rq, public.rq;

-- Partitioned tables on both sides, partitioned by other rules: rows
-- written since the copy are read through the source's partitions, a key
-- moved to another partition of the source included, and every repair
-- statement writes the target's partitions through their parent.
CREATE TABLE source.rt (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE source.rt1 PARTITION OF source.rt FOR VALUES FROM (MINVALUE) TO (500);
CREATE TABLE source.rt2 PARTITION OF source.rt FOR VALUES FROM (500) TO (MAXVALUE);
INSERT INTO source.rt SELECT g, 'v' || g FROM generate_series(1, 1000) g;
CREATE TABLE public.rt (id int PRIMARY KEY, v text) PARTITION BY HASH (id);
CREATE TABLE public.rt0 PARTITION OF public.rt FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE public.rt1 PARTITION OF public.rt FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.rt', 'public.rt', 'id', 300);
SELECT statement FROM tools.run('{public.rt}') \gexec
UPDATE source.rt SET v = 'changed' WHERE id IN (3, 700);
UPDATE source.rt SET id = 1400 WHERE id = 40;
DELETE FROM source.rt WHERE id IN (50, 650);
INSERT INTO source.rt VALUES (0, 'below'), (2000, 'above');
CALL tools.repair();
SELECT public.differing('source.rt', 'public.rt', 'id, v') AS rt;
DROP TABLE source.rt, public.rt;

-- Foreign keys between targets.  Rows changed with their keys kept meet
-- no foreign key: the repair leaves the keys alone.  Then the source
-- gained a parent and its child, and lost a parent and its children: a
-- statement of one job meets rows that the other repairs later.  Without
-- defer_constraints, the repair fails and says what to do; with it,
-- tools.repair() drops the foreign keys between the targets when one
-- refuses a row, writes that row again, and adds them back, validated.
-- A table that no job repairs keeps its foreign key to a target, and its
-- ON DELETE CASCADE acts.
CREATE TABLE source.rpar (id int PRIMARY KEY, v text);
CREATE TABLE source.rchi (id int PRIMARY KEY, pid int REFERENCES source.rpar, v text);
INSERT INTO source.rpar SELECT g, 'p' || g FROM generate_series(1, 100) g;
INSERT INTO source.rchi SELECT g, 1 + g % 100, 'c' || g FROM generate_series(1, 300) g;
CREATE TABLE public.rpar (id int PRIMARY KEY, v text);
CREATE TABLE public.rchi (id int PRIMARY KEY, pid int CONSTRAINT rchi_pid REFERENCES public.rpar, v text);
INSERT INTO tools.config (source, target, pkey, batchsize, priority, defer_constraints) VALUES
  ('source.rchi', 'public.rchi', 'id', 100, 1, true),
  ('source.rpar', 'public.rpar', 'id', 100, 2, true);
SELECT statement FROM tools.run('{public.rchi,public.rpar}') \gexec
UPDATE source.rpar SET v = 'changed' WHERE id = 3;
UPDATE source.rchi SET v = 'changed', pid = 4 WHERE id = 3;
CALL tools.repair();
SELECT public.differing('source.rchi', 'public.rchi', 'id, pid, v') AS rchi;
SELECT conname, convalidated FROM pg_constraint
 WHERE conrelid = 'public.rchi'::regclass AND contype = 'f';
CREATE TABLE public.rnote (id int PRIMARY KEY, pid int REFERENCES public.rpar ON DELETE CASCADE);
INSERT INTO public.rnote VALUES (1, 9), (2, 10);
DELETE FROM source.rchi WHERE pid = 9;
DELETE FROM source.rpar WHERE id = 9;
INSERT INTO source.rpar VALUES (500, 'new');
INSERT INTO source.rchi VALUES (500, 500, 'new');
UPDATE tools.config SET defer_constraints = false
 WHERE target IN ('public.rchi'::regclass, 'public.rpar'::regclass);
\set SHOW_CONTEXT never
CALL tools.repair();
\set SHOW_CONTEXT errors
UPDATE tools.config SET defer_constraints = true
 WHERE target IN ('public.rchi'::regclass, 'public.rpar'::regclass);
CALL tools.repair();
SELECT public.differing('source.rpar', 'public.rpar', 'id, v') AS rpar,
       public.differing('source.rchi', 'public.rchi', 'id, pid, v') AS rchi;
SELECT conname, convalidated FROM pg_constraint
 WHERE conrelid = 'public.rchi'::regclass AND contype = 'f';
SELECT count(*) AS deferred FROM tools.deferred_constraint;
SELECT id, pid FROM public.rnote;
-- A repair that fails once the keys are dropped leaves them recorded (a
-- child comes before its parent, which a trigger on the target refuses);
-- the next call adds them back.
CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'refused';
END $$;
CREATE TRIGGER refuse BEFORE INSERT ON public.rpar FOR EACH ROW EXECUTE FUNCTION public.refuse();
INSERT INTO source.rpar VALUES (501, 'refused');
INSERT INTO source.rchi VALUES (501, 501, 'child of refused');
\set SHOW_CONTEXT never
CALL tools.repair();
\set SHOW_CONTEXT errors
SELECT relation, name FROM tools.deferred_constraint;
SELECT count(*) AS keys FROM pg_constraint WHERE conrelid = 'public.rchi'::regclass AND contype = 'f';
DROP TRIGGER refuse ON public.rpar;
DROP FUNCTION public.refuse();
CALL tools.repair();
SELECT conname, convalidated FROM pg_constraint
 WHERE conrelid = 'public.rchi'::regclass AND contype = 'f';
SELECT public.differing('source.rpar', 'public.rpar', 'id, v') AS rpar,
       public.differing('source.rchi', 'public.rchi', 'id, pid, v') AS rchi;
-- A key checked at commit is checked at the end of each repair statement,
-- where the repair can go past it.
ALTER TABLE public.rchi ALTER CONSTRAINT rchi_pid DEFERRABLE INITIALLY DEFERRED;
INSERT INTO source.rpar VALUES (502, 'new');
INSERT INTO source.rchi VALUES (502, 502, 'new');
CALL tools.repair();
SELECT public.differing('source.rchi', 'public.rchi', 'id, pid, v') AS rchi;
SELECT conname, convalidated, condeferred FROM pg_constraint
 WHERE conrelid = 'public.rchi'::regclass AND contype = 'f';
DROP TABLE source.rchi, source.rpar, public.rchi, public.rnote, public.rpar;

-- It commits: not inside a transaction block.
BEGIN;
CALL tools.repair();
ROLLBACK;

DROP TABLE source.r, public.r, source.rc, public.rc, public.rk, public.rp;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
