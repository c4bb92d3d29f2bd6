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

-- What a copy must equal: count and an order-independent hash of the rows.
CREATE OR REPLACE FUNCTION public.signature(rel regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE s text;
BEGIN
  EXECUTE format('SELECT count(*) || '':'' || coalesce(sum(hashtext(x::text)::numeric), 0)
                    FROM (SELECT id, n, t, ts, amount FROM %s) x', rel) INTO s;
  RETURN s;
END $$;
