-- Objects planted earlier in search_path change nothing that tools runs:
-- operators that are always false, a max() that always says 0, decoy
-- tables named like the extension's.
CREATE SCHEMA planted;
CREATE FUNCTION planted.never(int, int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE FUNCTION planted.never8(bigint, bigint) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR planted.> (LEFTARG = int, RIGHTARG = int, FUNCTION = planted.never);
CREATE OPERATOR planted.<= (LEFTARG = int, RIGHTARG = int, FUNCTION = planted.never);
CREATE OPERATOR planted.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = planted.never8);
CREATE OPERATOR planted.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = oidne);
CREATE FUNCTION planted.zero(int, int) RETURNS int LANGUAGE sql AS 'SELECT 0';
CREATE AGGREGATE planted.max(int) (SFUNC = planted.zero, STYPE = int, INITCOND = '0');
CREATE FUNCTION planted.zero8(bigint, bigint) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint';
CREATE AGGREGATE planted.max(bigint) (SFUNC = planted.zero8, STYPE = bigint, INITCOND = '0');
CREATE TABLE planted.job (job_id bigint, run_id bigint);
CREATE TABLE planted.config (config_id int);
CREATE TABLE planted.run (run_id bigint);

CREATE TABLE source.sp (id int PRIMARY KEY, v text);
INSERT INTO source.sp SELECT g, 'v' || g FROM generate_series(1, 50) g;
CREATE TABLE public.sp (id int, v text);
INSERT INTO tools.config (source, target, pkey, batchsize, trunc) VALUES ('source.sp', 'public.sp', 'id', 7, true);

SET search_path = planted, public, pg_catalog;
SELECT statement FROM tools.run('{sp}');
CALL tools.start(1);
-- A second run continues and truncates as usual.
SELECT statement FROM tools.run('{sp}');
CALL tools.start(2);
RESET search_path;

SELECT job_id, state, lastseq, rows, error FROM tools.job ORDER BY job_id;
SELECT count(*), count(DISTINCT id), min(id), max(id) FROM public.sp;

DROP SCHEMA planted CASCADE;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
