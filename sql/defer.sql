-- defer_indexes: a target's secondary indexes are dropped before its jobs
-- copy and built again, as they were, when the run's last job on it
-- completes; constraints stay and keep catching bad rows.
CREATE TABLE source.d (id int PRIMARY KEY, n int, t text);
INSERT INTO source.d SELECT g, g % 7, md5(g::text) FROM generate_series(1, 1000) g;
CREATE SCHEMA other;
CREATE TABLE public.d (t text, n int, id int PRIMARY KEY, u int, CHECK (n >= 0));
CREATE INDEX d_t ON public.d (t);
CREATE INDEX d_lower ON public.d (lower(t) text_pattern_ops) WHERE n > 2;
CREATE INDEX d_n ON public.d USING hash (n);
CREATE UNIQUE INDEX d_u ON public.d (u);               -- unique: kept
COMMENT ON INDEX d_t IS 'by text';
CREATE TABLE public.d_before AS
SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def, obj_description(i.indexrelid) AS comment
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'public.d'::regclass;

INSERT INTO tools.config (source, target, pkey, batchsize, parts, defer_indexes)
VALUES ('source.d', 'public.d', 'id', 100, 2, true);
ANALYZE source.d;
SELECT statement FROM tools.run();

-- The first part drops them, and leaves them dropped: its sibling has not
-- completed.
CALL tools.start(1);
SELECT relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
 WHERE i.indrelid = 'public.d'::regclass ORDER BY 1;
SELECT target, index_name, definition, comment, job_id FROM tools.deferred_index ORDER BY index_name;
-- Calling the completed job again drops nothing more and builds nothing.
CALL tools.start(1);
SELECT count(*) FROM tools.deferred_index;

-- The second part completes last and builds them again, as they were, with
-- names planted earlier in search_path ignored.
CREATE FUNCTION other.lower(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT ''x''';
SET search_path = other, public;
CALL tools.start(2);
RESET search_path;
SELECT count(*) FROM tools.deferred_index;
SELECT b.relname, a.def IS NOT DISTINCT FROM b.def AS same_definition,
       a.comment IS NOT DISTINCT FROM b.comment AS same_comment
  FROM public.d_before b
  LEFT JOIN (SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def, obj_description(i.indexrelid) AS comment
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              WHERE i.indrelid = 'public.d'::regclass) a USING (relname)
 ORDER BY 1;
SELECT public.differing('source.d', 'public.d', 'id, n, t');
SET enable_seqscan = off;
SELECT count(*) FROM public.d WHERE lower(t) LIKE 'a%' AND n > 2;
RESET enable_seqscan;
SELECT job_id, state, rows FROM tools.job ORDER BY job_id;

-- A build that fails fails the job, whose rows stay copied, and keeps the
-- definition; the next call builds it once the cause is gone.
CREATE FUNCTION public.inverse(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1 / $1';
CREATE INDEX d_inverse ON public.d (public.inverse(n)) WHERE n > 0;
UPDATE tools.config SET parts = NULL, trunc = true;
SELECT statement FROM tools.run();
CREATE OR REPLACE FUNCTION public.inverse(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1 / ($1 - 3)';
CALL tools.start(3);
SELECT job_id, state, rows, error FROM tools.job WHERE job_id = 3;
SELECT count(*) FROM public.d;
SELECT index_name FROM tools.deferred_index ORDER BY 1;
SELECT to_regclass('public.d_t') IS NOT NULL AS d_t_built;
CREATE OR REPLACE FUNCTION public.inverse(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1 / $1';
CALL tools.start(3);
SELECT job_id, state, rows FROM tools.job WHERE job_id = 3;
SELECT count(*) FROM tools.deferred_index;
SELECT pg_get_indexdef('public.d_inverse'::regclass);

-- A relation that took a deferred index's name meanwhile is left alone.
UPDATE tools.config SET parts = 2;
SELECT statement FROM tools.run();
CALL tools.start(4);
CREATE UNIQUE INDEX d_t ON public.d (id, t);
CALL tools.start(5);
SELECT count(*) FROM tools.deferred_index;
SELECT pg_get_indexdef('public.d_t'::regclass);
DROP INDEX public.d_t;
CREATE INDEX d_t ON public.d (t);

-- Only the table's owner defers its indexes.
CREATE ROLE regress_tools_defer;
GRANT USAGE ON SCHEMA tools, source TO regress_tools_defer;
GRANT SELECT ON tools.config, tools.deferred_index TO regress_tools_defer;
GRANT SELECT, INSERT, UPDATE ON tools.run, tools.job TO regress_tools_defer;
GRANT SELECT ON source.d TO regress_tools_defer;
GRANT INSERT, TRUNCATE ON public.d TO regress_tools_defer;
SELECT statement FROM tools.run();
SET ROLE regress_tools_defer;
CALL tools.start(6);
RESET ROLE;
SELECT job_id, state, error FROM tools.job WHERE job_id = 6;
SELECT count(*) FROM tools.deferred_index;
SELECT count(*) FROM pg_index WHERE indrelid = 'public.d'::regclass;

-- Definitions are run as SQL by the job that builds them: a role reaches
-- only the rows of tables whose owner's rights it has.
GRANT INSERT, DELETE ON tools.deferred_index TO regress_tools_defer;
SET ROLE regress_tools_defer;
INSERT INTO tools.deferred_index (target, index_name, definition, job_id)
VALUES ('public.d', 'd_x', 'CREATE INDEX d_x ON public.d (n)', 6);
RESET ROLE;
INSERT INTO tools.deferred_index (target, index_name, definition, job_id)
VALUES ('public.d', 'd_x', 'CREATE INDEX d_x ON public.d (n); CREATE TABLE public.planted ()', 6);
SET ROLE regress_tools_defer;
SELECT count(*) FROM tools.deferred_index;
DELETE FROM tools.deferred_index;
RESET ROLE;

-- A definition that is not one CREATE INDEX statement of its index on its
-- table fails the job that would build it, runs nothing and stays, even
-- for a job that defers nothing itself.
UPDATE tools.config SET parts = NULL, defer_indexes = false;
SELECT statement FROM tools.run();
CALL tools.start(8);
SELECT job_id, state, rows FROM tools.job WHERE job_id = 8;
SELECT to_regclass('public.planted') IS NULL AS nothing_planted,
       to_regclass('public.d_x') IS NULL AS no_index;
SELECT index_name, definition FROM tools.deferred_index;
UPDATE tools.deferred_index SET definition = 'CREATE INDEX d_x ON source.d (n)';
CALL tools.start(8);
UPDATE tools.deferred_index SET definition = 'CREATE INDEX d_y ON public.d (n)';
CALL tools.start(8);
SELECT to_regclass('source.d_x') IS NULL AND to_regclass('public.d_y') IS NULL AS nothing_built;
UPDATE tools.deferred_index SET definition = 'CREATE INDEX d_x ON public.d (n)';
CALL tools.start(8);
SELECT job_id, state, rows FROM tools.job WHERE job_id = 8;
SELECT count(*) FROM tools.deferred_index;
SELECT pg_get_indexdef('public.d_x'::regclass);

-- A role that owns its target defers and builds its indexes through the
-- policy, once it may create them again: without CREATE on the schema it is
-- refused before anything is dropped.  The schema is its own: before
-- PostgreSQL 15, every role may create in schema public.
CREATE SCHEMA own;
GRANT USAGE ON SCHEMA own TO regress_tools_defer;
CREATE TABLE own.e (id int PRIMARY KEY, n int, t text);
CREATE INDEX e_n ON own.e (n);
ALTER TABLE own.e OWNER TO regress_tools_defer;
GRANT UPDATE ON tools.deferred_index TO regress_tools_defer;
INSERT INTO tools.config (source, target, pkey, batchsize, defer_indexes)
VALUES ('source.d', 'own.e', 'id', 300, true);
SELECT statement FROM tools.run('{own.e}');
SET ROLE regress_tools_defer;
CALL tools.start(9);
RESET ROLE;
SELECT job_id, state, rows FROM tools.job WHERE job_id = 9;
SELECT count(*) FROM tools.deferred_index;
SELECT to_regclass('own.e_n') IS NOT NULL AS e_n_kept;
GRANT CREATE ON SCHEMA own TO regress_tools_defer;
SET ROLE regress_tools_defer;
CALL tools.start(9);
RESET ROLE;
SELECT job_id, state, rows FROM tools.job WHERE job_id = 9;
SELECT count(*) FROM tools.deferred_index;
SELECT pg_get_indexdef('own.e_n'::regclass);

REVOKE ALL ON SCHEMA tools, source, own FROM regress_tools_defer;
REVOKE ALL ON ALL TABLES IN SCHEMA tools, source FROM regress_tools_defer;
REVOKE ALL ON public.d FROM regress_tools_defer;
DROP TABLE own.e;
DROP SCHEMA own;
DROP ROLE regress_tools_defer;
DROP TABLE source.d, public.d, public.d_before;
DROP FUNCTION other.lower(text), public.inverse(int);
DROP SCHEMA other;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
