-- Foreign sources.  A second database of this cluster is the remote server:
-- postgres_fdw, IMPORT FOREIGN SCHEMA, a run of several tables with
-- priorities, a table split between two jobs, trunc and non-trunc targets, a
-- failure fixed and resumed; every target equal to its source at the end.
-- The remote counts the rows it reads: each batch reads only its own, also
-- for a table cut into parts and for a composite key.  A file_fdw source,
-- which cannot take the key order or range, gets a warning.
\set VERBOSITY default
\set home :DBNAME
CREATE DATABASE tools_fdw_remote;
\c tools_fdw_remote
CREATE TABLE public.items (id bigint PRIMARY KEY, name text);
INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 5000) g;
CREATE TABLE public.orders (id int PRIMARY KEY, item_id bigint, qty int);
INSERT INTO public.orders SELECT g, g % 5000 + 1, g % 9 + 1 FROM generate_series(1, 3000) g;
UPDATE public.orders SET qty = 0 WHERE id = 2222;
CREATE TABLE public.notes (id int NOT NULL, note text);
INSERT INTO public.notes SELECT g % 100, 'note ' || g FROM generate_series(1, 400) g;
-- Every row the remote reads from items through this view counts once.
CREATE SEQUENCE public.reads;
CREATE FUNCTION public.counted() RETURNS boolean LANGUAGE plpgsql VOLATILE AS
$$ BEGIN PERFORM nextval('public.reads'); RETURN true; END $$;
CREATE VIEW public.items_counted AS SELECT * FROM public.items WHERE public.counted();
-- Order lines, keyed by (order_id, line), counted the same way.
CREATE TABLE public.lines (order_id int, line int, qty int, PRIMARY KEY (order_id, line));
INSERT INTO public.lines SELECT g / 4, g % 4, g % 7 FROM generate_series(0, 9999) g;
CREATE VIEW public.lines_counted AS SELECT * FROM public.lines WHERE public.counted();
CREATE VIEW public.reads_count AS
  SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS reads FROM public.reads;
-- Statistics, as a live server has them: the remote plans by them.
ANALYZE;
\c :home

CREATE EXTENSION postgres_fdw;
SELECT public.loopback_server('remote', 'tools_fdw_remote');
CREATE USER MAPPING FOR CURRENT_USER SERVER remote;
CREATE SCHEMA remote;
IMPORT FOREIGN SCHEMA public FROM SERVER remote INTO remote;

CREATE TABLE public.fdw_items (name text, id bigint PRIMARY KEY);
INSERT INTO public.fdw_items VALUES ('left over', 99999);
CREATE TABLE public.fdw_orders (id int PRIMARY KEY, item_id bigint, qty int CHECK (qty > 0));
CREATE TABLE public.fdw_notes (note text, id int);
INSERT INTO tools.config (source, target, pkey, priority, condition, batchsize, trunc) VALUES
  ('remote.items_counted', 'public.fdw_items', 'id', 1, 'id <= 2500', 500, true),
  ('remote.items_counted', 'public.fdw_items', 'id', 1, 'id > 2500', 500, true),
  ('remote.orders', 'public.fdw_orders', 'id', 2, NULL, 1000, false),
  ('remote.notes', 'public.fdw_notes', 'id', 3, NULL, NULL, true);
SELECT statement, target FROM tools.run();
CALL tools.start(1);
CALL tools.start(2);
-- (The failing statement's text, which differs with the path the job
-- takes, is left out of the error's context.)
\set SHOW_CONTEXT never
CALL tools.start(3);
\set SHOW_CONTEXT errors
CALL tools.start(4);
SELECT job_id, state, lastseq, rows, error FROM tools.job ORDER BY job_id;

-- The failed job resumes after the fix, here through the foreign table.
UPDATE remote.orders SET qty = 1 WHERE qty = 0;
CALL tools.start(3);
SELECT run_id, target, state, rows FROM tools.report ORDER BY target::text;

SELECT public.differing('remote.items', 'public.fdw_items', 'id, name') AS items,
       public.differing('remote.orders', 'public.fdw_orders', 'id, item_id, qty') AS orders,
       public.differing('remote.notes', 'public.fdw_notes', 'id, note') AS notes;

-- Rows the remote read for the two jobs of items, 5,000 rows in batches of
-- 500 in all: each batch's bound read its 500 keys (OFFSET and LIMIT went to
-- the remote), each copy read its range; 2 x 5,000, not the rest of the
-- table per batch (which would be 20,000).  The split is by key ranges: the
-- remote planner estimates them well and reads them through its index (with
-- a condition it cannot estimate, such as id % 2 = 0, or without statistics,
-- on a table this small it prefers to scan and sort all of it, its own
-- choice).
SELECT reads AS remote_reads FROM remote.reads_count;

-- file_fdw cannot take the key order or range: the job warns, then copies.
CREATE EXTENSION file_fdw;
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE remote.items_file (id bigint, name text) SERVER files
  OPTIONS (program 'seq 5000 | sed ''s/.*/&,item &/''', format 'csv');
CREATE TABLE public.fdw_items_from_file (id bigint, name text);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('remote.items_file', 'public.fdw_items_from_file', 'id', 2000);
SELECT statement FROM tools.run('{public.fdw_items_from_file}');
CALL tools.start(5);
SELECT public.differing('public.fdw_items', 'public.fdw_items_from_file', 'id, name') AS items_from_file;

-- A table cut into two parts over postgres_fdw.  The cuts come from the
-- foreign table's statistics; without them, an integer key's range is cut
-- into equal widths, from its smallest and largest key; ANALYZE samples the
-- remote table.  Each part reads only its range on the remote: the rows
-- twice in all, as one job does.
CREATE TABLE public.fdw_items_parts (id bigint PRIMARY KEY, name text);
INSERT INTO tools.config (source, target, pkey, batchsize, trunc, parts)
VALUES ('remote.items_counted', 'public.fdw_items_parts', 'id', 500, true, 2);
SELECT statement FROM tools.run('{public.fdw_items_parts}');
SELECT lower, upper FROM tools.job WHERE run_id = (SELECT max(run_id) FROM tools.run) ORDER BY job_id;
-- A key of another type, without statistics, cannot be cut: run() says
-- what can be done.
CREATE TABLE public.fdw_by_name (id bigint, name text);
INSERT INTO tools.config (source, target, pkey, trunc, parts)
VALUES ('remote.items_file', 'public.fdw_by_name', 'name', true, 2);
SELECT statement FROM tools.run('{public.fdw_by_name}');
DELETE FROM tools.config WHERE target = 'public.fdw_by_name'::regclass;
DROP TABLE public.fdw_by_name;
-- A foreign source split among configurations by a modulo: run() warns,
-- and says to use parts.
CREATE TABLE public.fdw_mod (id bigint, name text);
INSERT INTO tools.config (source, target, pkey, condition)
VALUES ('remote.items_counted', 'public.fdw_mod', 'id', 'id % 2 = 0');
SELECT statement FROM tools.run('{public.fdw_mod}');
DELETE FROM tools.job WHERE config_id = (SELECT config_id FROM tools.config WHERE target = 'public.fdw_mod'::regclass);
DELETE FROM tools.config WHERE target = 'public.fdw_mod'::regclass;
DROP TABLE public.fdw_mod;
ANALYZE remote.items_counted;
SELECT reads AS reads_before FROM remote.reads_count \gset
SELECT statement FROM tools.run('{public.fdw_items_parts}') \gexec
SELECT lower, upper, state, rows FROM tools.job
 WHERE run_id = (SELECT max(run_id) FROM tools.run) ORDER BY job_id;
SELECT reads - :reads_before AS remote_reads FROM remote.reads_count;
SELECT public.differing('remote.items', 'public.fdw_items_parts', 'id, name') AS items_parts;

-- A composite key over postgres_fdw: (order_id, line) > ($1, $2) is sent to
-- the remote as order_id >= $1 AND NOT (order_id = $1 AND line <= $2), an
-- index range the remote planner estimates well, so each batch reads its
-- own rows there too: 2 x 10,000, and one batch more, where the counting
-- filter (which the remote planner expects to keep a third of the rows)
-- makes it sort the last rows once.
CREATE TABLE public.fdw_lines (order_id int, line int, qty int, PRIMARY KEY (order_id, line));
INSERT INTO tools.config (source, target, pkey, batchsize)
VALUES ('remote.lines_counted', 'public.fdw_lines', 'order_id, line', 1000);
SELECT reads AS reads_before FROM remote.reads_count \gset
SELECT statement FROM tools.run('{public.fdw_lines}') \gexec
SELECT state, lastkey, rows FROM tools.job WHERE run_id = (SELECT max(run_id) FROM tools.run);
SELECT reads - :reads_before AS remote_reads FROM remote.reads_count;
SELECT public.differing('remote.lines', 'public.fdw_lines', 'order_id, line, qty') AS lines;

-- tools.verify() over postgres_fdw: the range and the condition go to the
-- remote server, the rows are hashed here.  A changed value is found.
SELECT job_id, source_rows, target_rows, ok FROM tools.verify();
UPDATE public.fdw_lines SET qty = qty + 1 WHERE order_id = 1000 AND line = 2;
SELECT job_id, source_rows, target_rows, ok FROM tools.verify();

DROP TABLE public.fdw_items, public.fdw_orders, public.fdw_notes, public.fdw_items_from_file,
  public.fdw_items_parts, public.fdw_lines;
DROP SCHEMA remote CASCADE;
DROP EXTENSION postgres_fdw CASCADE;
DROP EXTENSION file_fdw CASCADE;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
DROP DATABASE tools_fdw_remote WITH (FORCE);
