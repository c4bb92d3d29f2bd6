-- bench/signature.sql: what a copy of the benchmark's rows must equal:
-- their count and an order-independent hash of them.
CREATE OR REPLACE FUNCTION public.signature(rel regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE s text;
BEGIN
  EXECUTE format('SELECT count(*) || '':'' || coalesce(sum(hashtext(x::text)::numeric), 0)
                    FROM (SELECT id, n, t, ts, amount FROM %s) x', rel) INTO s;
  RETURN s;
END $$;
