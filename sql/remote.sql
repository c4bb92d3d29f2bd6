-- Batches of a postgres_fdw source, read with COPY on the remote server over
-- a connection of the job's own.  Rows come in binary form where both sides
-- have the same built-in types, in text otherwise (enum, domain, or a
-- client encoding that is not the database's); the target equals the
-- source either way, whatever the session's styles.  A batch that COPY
-- cannot read as postgres_fdw would reads through the foreign table.  A
-- remote error fails the batch, which resumes.  A role that is not
-- superuser connects only as postgres_fdw would let it.
\set VERBOSITY default
\set home :DBNAME
CREATE DATABASE tools_remote_src;
\c tools_remote_src
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN public.positive AS int CHECK (VALUE > 0);
CREATE TABLE public.kinds (
  id bigint PRIMARY KEY, i int, n numeric(12,3), f float8, t text, b bool,
  ts timestamptz, d date, iv interval, u uuid, j jsonb, a int[], by bytea);
INSERT INTO public.kinds
SELECT g, g * 7 % 1000, g / 7.0, g / 3.0, 'é' || g || E'\t\\ \n' || repeat('x', g % 5),
       g % 2 = 0, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 hour 1.5 second',
       date '2000-02-28' + g, g * interval '1 day 3 seconds', md5(g::text)::uuid,
       jsonb_build_object('g', g, 's', 'é'), ARRAY[g, -g], decode(md5(g::text), 'hex')
  FROM generate_series(1, 2000) g;
UPDATE public.kinds SET i = NULL, t = NULL, ts = NULL, a = NULL WHERE id % 97 = 0;
INSERT INTO public.kinds (id, f, ts, d, iv) VALUES
  (2001, 'NaN', 'infinity', '-infinity', '-1 year 2 days -03:04:05.678'),
  (2002, '-Infinity', '1999-12-31 23:59:59.999999+00', '4713-01-01 BC', '0'),
  (2003, 1e-310, '0001-01-01 00:00:00+00 BC', '5874897-12-31', '178000000 years');
CREATE TABLE public.moods (id int PRIMARY KEY, m public.mood, p public.positive,
                           ts timestamp, iv interval);
INSERT INTO public.moods
SELECT g, (ARRAY['sad', 'ok', 'happy'])[g % 3 + 1]::public.mood, g,
       timestamp '2001-02-03 04:05:06' + g * interval '1 minute 0.25 second',
       g * interval '-1 day 2 hours'
  FROM generate_series(1, 1000) g;
-- The remote server fails at id 1500 while it streams the second batch.
CREATE TABLE public.ratios (id int PRIMARY KEY, d int);
INSERT INTO public.ratios SELECT g, CASE WHEN g = 1500 THEN 0 ELSE g END FROM generate_series(1, 3000) g;
CREATE VIEW public.ratio_view AS SELECT id, 3000 / d AS q FROM public.ratios;
ANALYZE;
\c :home

CREATE EXTENSION postgres_fdw;
SELECT public.loopback_server('src', 'tools_remote_src');
CREATE USER MAPPING FOR CURRENT_USER SERVER src;
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN public.positive AS int CHECK (VALUE > 0);
CREATE SCHEMA src;
IMPORT FOREIGN SCHEMA public FROM SERVER src INTO src;

-- Targets: columns in another order, and one the source lacks, which
-- takes its default.
CREATE TABLE public.kinds (
  extra text DEFAULT 'default', by bytea, a int[], j jsonb, u uuid, iv interval, d date,
  ts timestamptz, b bool, t text, f float8, n numeric(12,3), i int, id bigint PRIMARY KEY);
CREATE TABLE public.kinds_latin (LIKE public.kinds INCLUDING ALL);
CREATE TABLE public.moods (p public.positive, m public.mood, iv interval, ts timestamp, id int PRIMARY KEY);
CREATE TABLE public.ratios (id int PRIMARY KEY, q int);
INSERT INTO tools.config (source, target, pkey, batchsize, trunc) VALUES
  ('src.kinds', 'public.kinds', 'id', 500, false),
  ('src.moods', 'public.moods', 'id', 300, true),
  ('src.ratio_view', 'public.ratios', 'id', 1000, true);
-- Read on its own below; it is not emptied, which would show the name of
-- its TOAST table.
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES
  ('src.kinds', 'public.kinds_latin', 'id', 500);

-- The connections of jobs to the remote server, once the calls are over:
-- none is left open.
CREATE FUNCTION public.job_connections() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  FOR i IN 1 .. 300 LOOP
    SELECT count(*) INTO n FROM pg_stat_activity
     WHERE datname = 'tools_remote_src' AND application_name LIKE 'tools job %';
    EXIT WHEN n = 0;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN n;
END $$;

SELECT statement FROM tools.run('{public.kinds, public.moods, public.ratios}');
-- Session styles that COPY's text form would misread if nothing fixed them.
SET datestyle = 'SQL, DMY';
SET intervalstyle = 'sql_standard';
SET extra_float_digits = -3;
SET client_min_messages = debug1;
CALL tools.start(1);
CALL tools.start(2);
CALL tools.start(3);
RESET client_min_messages;
SELECT job_id, state, rows, error FROM tools.job ORDER BY job_id;
SELECT public.differing('src.kinds', 'public.kinds', 'id, i, n, f, t, b, ts, d, iv, u, j, a, by') AS kinds,
       (SELECT count(*) FROM public.kinds WHERE extra = 'default') AS defaults,
       public.differing('src.moods', 'public.moods', 'id, m, p, ts, iv') AS moods;

-- The remote error failed the second batch: the first stays, nothing of
-- the second.  Fixed, the job resumes.
SELECT count(*) AS ratios_kept FROM public.ratios;
UPDATE src.ratios SET d = 1 WHERE id = 1500;
CALL tools.start(3);
SELECT job_id, state, rows FROM tools.job WHERE job_id = 3;
SELECT public.differing('src.ratio_view', 'public.ratios', 'id, q') AS ratios;
SELECT public.job_connections();

-- A client encoding other than the database's: text form, same rows.
SELECT statement FROM tools.run('{public.kinds_latin}');
SET client_encoding = 'LATIN1';
SET client_min_messages = debug1;
CALL tools.start(4);
RESET client_min_messages;
RESET client_encoding;
SELECT public.differing('src.kinds', 'public.kinds_latin', 'id, i, n, f, t, b, ts, d, iv, u, j, a, by') AS kinds;

-- Batches that read through the foreign table: a plan cache forced to
-- generic plans, where the range would go to the remote server as
-- parameters; tools.remote_copy off.  Same rows.
SELECT statement FROM tools.run('{public.moods}');
SET plan_cache_mode = force_generic_plan;
SET client_min_messages = debug1;
CALL tools.start(5);
RESET plan_cache_mode;
SELECT statement FROM tools.run('{public.moods}');
SET tools.remote_copy = off;
CALL tools.start(6);
RESET tools.remote_copy;
RESET client_min_messages;
SELECT public.differing('src.moods', 'public.moods', 'id, m, p, ts, iv') AS moods;
RESET datestyle;
RESET intervalstyle;
RESET extra_float_digits;

-- A partitioned target, which the bulk path does not take: COPY FROM
-- writes the rows, routed to their partitions.
CREATE TABLE public.moods_parts (id int PRIMARY KEY, m public.mood, p public.positive,
                                 ts timestamp, iv interval) PARTITION BY RANGE (id);
CREATE TABLE public.moods_low PARTITION OF public.moods_parts FOR VALUES FROM (MINVALUE) TO (500);
CREATE TABLE public.moods_high PARTITION OF public.moods_parts FOR VALUES FROM (500) TO (MAXVALUE);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('src.moods', 'public.moods_parts', 'id', 300);
SELECT statement FROM tools.run('{public.moods_parts}');
SET client_min_messages = debug1;
CALL tools.start(7);
RESET client_min_messages;
SELECT public.differing('src.moods', 'public.moods_parts', 'id, m, p, ts, iv') AS moods,
       (SELECT count(*) FROM public.moods_low) AS low, (SELECT count(*) FROM public.moods_high) AS high;

-- A role that is not superuser.  Without a password in its user mapping,
-- the job reads through the foreign table, where postgres_fdw refuses it;
-- with one, on a server that does not ask for it, COPY refuses it too.
-- Neither lets the role in as the server's default user.
CREATE ROLE regress_remote_user;
GRANT USAGE ON SCHEMA tools, src TO regress_remote_user;
GRANT SELECT ON tools.config TO regress_remote_user;
GRANT SELECT, INSERT, UPDATE ON tools.run, tools.job TO regress_remote_user;
GRANT SELECT ON src.moods TO regress_remote_user;
GRANT SELECT, INSERT, TRUNCATE ON public.moods TO regress_remote_user;
CREATE USER MAPPING FOR regress_remote_user SERVER src;
SET ROLE regress_remote_user;
SELECT statement FROM tools.run('{public.moods}');
SET client_min_messages = debug1;
CALL tools.start(8);
RESET client_min_messages;
RESET ROLE;
ALTER USER MAPPING FOR regress_remote_user SERVER src OPTIONS (ADD password 'secret');
SET ROLE regress_remote_user;
CALL tools.start(8);
RESET ROLE;
SELECT job_id, state, rows FROM tools.job WHERE job_id = 8;
SELECT public.job_connections();

-- A foreign table that points back at its own target, through a server
-- that is this one and this database: refused before the target is
-- emptied (a trunc job would otherwise wait for ever on its own lock, or
-- copy every row twice).
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
SELECT public.loopback_server('self', :'home');
CREATE USER MAPPING FOR CURRENT_USER SERVER self;
CREATE TABLE public.selfish (id int PRIMARY KEY, v text);
INSERT INTO public.selfish SELECT g, 'v' || g FROM generate_series(1, 100) g;
CREATE FOREIGN TABLE src.selfish (id int, v text) SERVER self
  OPTIONS (schema_name 'public', table_name 'selfish');
INSERT INTO tools.config (source, target, pkey, batchsize, trunc) VALUES ('src.selfish', 'public.selfish', 'id', 10, true);
SELECT statement FROM tools.run();
CALL tools.start(1);
SELECT count(*) FROM public.selfish;
-- The same server under an address its options do not show to be this
-- one (the socket directory spelled with a trailing "/."), read through
-- the foreign table: from 14 on, the remote server tells that it is this
-- one, over a connection opened for the question.
SELECT pg_catalog.current_setting('server_version_num')::int >= 140000 AS asks_remote \gset
\if :asks_remote
SELECT format('%s/.', split_part(current_setting('unix_socket_directories'), ',', 1)) AS dotted \gset
ALTER SERVER self OPTIONS (SET host :'dotted');
SET tools.remote_copy = off;
CALL tools.start(1);
RESET tools.remote_copy;
SELECT count(*) FROM public.selfish;
\endif
DROP FOREIGN TABLE src.selfish;
DROP TABLE public.selfish;
DROP USER MAPPING FOR CURRENT_USER SERVER self;
DROP SERVER self;

DROP TABLE public.kinds, public.kinds_latin, public.moods, public.moods_parts, public.ratios;
DROP FUNCTION public.job_connections();
DROP SCHEMA src CASCADE;
DROP USER MAPPING FOR regress_remote_user SERVER src;
DROP EXTENSION postgres_fdw CASCADE;
DROP TYPE public.mood;
DROP DOMAIN public.positive;
REVOKE ALL ON SCHEMA tools FROM regress_remote_user;
REVOKE ALL ON ALL TABLES IN SCHEMA tools FROM regress_remote_user;
DROP ROLE regress_remote_user;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
DROP DATABASE tools_remote_src WITH (FORCE);
