-- The bulk path: batches written into plain tables the way COPY FROM does,
-- and every target where INSERT must do it instead.  Each job says which
-- path it takes at DEBUG1; the rows must be the same either way.
\set VERBOSITY default
CREATE TABLE source.b (
    id bigint PRIMARY KEY,
    n integer,
    t text,
    ts timestamptz,
    amount numeric(12,2)
);
INSERT INTO source.b
SELECT g, g % 7, CASE WHEN g % 10 <> 0 THEN repeat(md5(g::text), 1 + g % 3) END,
       timestamptz '2026-01-01' + g * interval '1 minute', g / 3.0
  FROM generate_series(1, 3000) g;
-- Values large enough to be TOASTed.
UPDATE source.b SET t = repeat(md5(id::text), 400) WHERE id % 500 = 0;

-- Columns in another order, a dropped column, a default, an identity column
-- (GENERATED ALWAYS: takes the source's values), a stored generated column.
CREATE SEQUENCE public.b_seq;
CREATE TABLE public.b (
    gone int,
    amount numeric(12,2),
    loaded bigint DEFAULT nextval('public.b_seq'),
    double_n integer GENERATED ALWAYS AS (n * 2) STORED,
    t text,
    n integer NOT NULL,
    ts timestamptz,
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY
);
ALTER TABLE public.b DROP COLUMN gone;
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.b', 'public.b', 'id', 700);
SELECT statement FROM tools.run();
SET client_min_messages = debug1;
CALL tools.start(1);
RESET client_min_messages;

CREATE FUNCTION public.same_rows(target regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE d bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM ((SELECT id, n, t, ts, amount FROM source.b EXCEPT ALL
                    SELECT id, n, t, ts, amount FROM %1$s) UNION ALL
                  (SELECT id, n, t, ts, amount FROM %1$s EXCEPT ALL
                    SELECT id, n, t, ts, amount FROM source.b)) d', target) INTO d;
  RETURN d;
END $$;
SELECT state, lastseq, rows, public.same_rows('public.b') AS differing_rows FROM tools.job WHERE job_id = 1;
SELECT count(DISTINCT loaded) AS defaults, bool_and(double_n = n * 2) AS generated,
       max(length(t)) AS longest FROM public.b;

-- A duplicate key near the end of the second batch (the run empties the
-- target, then a row comes in the way): the server's unique violation, the
-- batch rolled back (also the rows flushed before the duplicate), the first
-- batch kept; the resume after the fix copies the rest exactly.
UPDATE tools.config SET trunc = true, batchsize = 1500;
SELECT statement FROM tools.run();
CREATE FUNCTION public.in_the_way() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.b (id, n, t) OVERRIDING SYSTEM VALUE VALUES (2900, 0, 'in the way'); RETURN NULL; END $$;
CREATE TRIGGER in_the_way AFTER TRUNCATE ON public.b EXECUTE FUNCTION public.in_the_way();
CALL tools.start(2);
DROP TRIGGER in_the_way ON public.b;
SELECT state, lastseq, rows, (SELECT count(*) FROM public.b) AS target_rows FROM tools.job WHERE job_id = 2;
DELETE FROM public.b WHERE t = 'in the way';
CALL tools.start(2);
SELECT state, lastseq, rows, public.same_rows('public.b') AS differing_rows FROM tools.job WHERE job_id = 2;

-- A NULL where the target has NOT NULL: the server's not-null violation.
UPDATE source.b SET n = NULL WHERE id = 1500;
SELECT statement FROM tools.run();
CALL tools.start(3);
SELECT state, lastseq, rows, (SELECT count(*) FROM public.b) AS target_rows FROM tools.job WHERE job_id = 3;
UPDATE source.b SET n = 1500 % 7 WHERE id = 1500;

-- Targets that INSERT writes into, with the reason, and the same rows.
CREATE TABLE public.parent (id bigint PRIMARY KEY);
INSERT INTO public.parent SELECT id FROM source.b;
CREATE TABLE public.with_fk (LIKE source.b, FOREIGN KEY (id) REFERENCES public.parent);
CREATE TABLE public.wider (id bigint, n bigint, t text, ts timestamptz, amount numeric);
CREATE TABLE public.with_trigger (LIKE source.b);
CREATE FUNCTION public.upper_t() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.t := upper(NEW.t); RETURN NEW; END $$;
CREATE TRIGGER upper_t BEFORE INSERT ON public.with_trigger FOR EACH ROW EXECUTE FUNCTION public.upper_t();
CREATE TABLE public.parted (LIKE source.b) PARTITION BY RANGE (id);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (MINVALUE) TO (1500);
CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM (1500) TO (MAXVALUE);
CREATE TABLE public.other_parted (LIKE source.b) PARTITION BY RANGE (id);
CREATE TABLE public.partition_1 PARTITION OF public.other_parted FOR VALUES FROM (MINVALUE) TO (1500);
CREATE TABLE public.deferrable (LIKE source.b, UNIQUE (id) DEFERRABLE);
CREATE TABLE public.plain_off (LIKE source.b);
DELETE FROM tools.config;
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES
  ('source.b', 'public.with_fk', 'id', 700),
  ('source.b', 'public.wider', 'id', 700),
  ('source.b', 'public.with_trigger', 'id', 700),
  ('source.b', 'public.parted', 'id', 700),
  ('source.b', 'public.partition_1', 'id', 700),
  ('source.b', 'public.deferrable', 'id', 700),
  ('source.b', 'public.plain_off', 'id', 700);
UPDATE tools.config SET condition = 'id < 1500' WHERE target = 'public.partition_1'::regclass;
SELECT statement FROM tools.run();
SET client_min_messages = debug1;
CALL tools.start(4);
CALL tools.start(5);
CALL tools.start(6);
CALL tools.start(7);
CALL tools.start(8);
CALL tools.start(9);
SET tools.bulk_insert = off;
CALL tools.start(10);
RESET tools.bulk_insert;
RESET client_min_messages;
SELECT j.job_id, c.target, j.state, j.rows FROM tools.job j JOIN tools.config c USING (config_id)
 WHERE j.run_id = 4 ORDER BY j.job_id;
SELECT public.same_rows('public.with_fk') AS with_fk, public.same_rows('public.wider') AS wider,
       public.same_rows('public.parted') AS parted, public.same_rows('public.deferrable') AS deferrable,
       (SELECT count(*) FROM public.partition_1) AS partition_1,
       public.same_rows('public.plain_off') AS plain_off;
SELECT count(*) FILTER (WHERE t = upper(t)) AS upper_cased, count(*) FROM public.with_trigger;

DROP TABLE public.b, public.with_fk, public.parent, public.wider, public.with_trigger,
  public.parted, public.other_parted, public.deferrable, public.plain_off, source.b;
DROP SEQUENCE public.b_seq;
DROP FUNCTION public.same_rows(regclass), public.upper_t(), public.in_the_way();
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
