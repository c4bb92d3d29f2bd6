-- bench/data.sql: the benchmark's rows, mixed types, key in order.
-- psql variables: :rows, their number; :table, the table to create.
CREATE TABLE :table (
    id     bigint PRIMARY KEY,
    n      integer NOT NULL,
    t      text,
    ts     timestamptz,
    amount numeric(12,2)
);
INSERT INTO :table
SELECT g,
       ((g::bigint * 7919) % 100000)::int,
       md5(g::text) || repeat('x', (g % 40)::int),
       CASE WHEN g % 50 <> 0 THEN timestamptz '2020-01-01' + g * interval '1 second' END,
       (g % 100000) / 100.0
  FROM generate_series(1, :rows) g;
VACUUM ANALYZE :table;

\ir signature.sql
