-- bench/target.sql: the benchmark's database.  The same rows as a local
-- table, local.t, copied into public.t, whose columns come in another
-- order; and as a foreign table of the bench_src database, remote.r, copied
-- into public.r, whose columns come in the source's order (pgcopydb copies
-- into the table of the same name and needs that order), and into public.ri,
-- which has an index on its text column too.
-- psql variables: :rows, :host, :port.
CREATE EXTENSION tools;
CREATE EXTENSION postgres_fdw;

CREATE SCHEMA local;
\set table local.t
\ir data.sql

CREATE TABLE public.t (
    amount numeric(12,2),
    ts     timestamptz,
    t      text,
    n      integer NOT NULL,
    id     bigint PRIMARY KEY
);

CREATE TABLE public.r (LIKE local.t INCLUDING ALL);
-- The same with a secondary index whose keys come in no useful order.
CREATE TABLE public.ri (LIKE local.t INCLUDING ALL);
CREATE INDEX ri_t ON public.ri (t);

CREATE SERVER bench_src FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host :'host', port :'port', dbname 'bench_src', fetch_size '10000');
CREATE USER MAPPING FOR CURRENT_USER SERVER bench_src;
CREATE SCHEMA remote;
IMPORT FOREIGN SCHEMA public LIMIT TO (r) FROM SERVER bench_src INTO remote;
-- Statistics of the foreign table: tools.run() cuts parts from them.
ANALYZE remote.r;
