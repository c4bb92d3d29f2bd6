-- tools.verify(): each job's range counted and hashed on the source and the
-- target.  A missing row, an extra row and a changed value are each seen in
-- the range that holds them, and only there.  Source columns of other types
-- than the target's are compared as the target stores them.
\set VERBOSITY terse
CREATE TABLE source.v (id int PRIMARY KEY, name varchar(20), amount numeric(12,2),
                       at timestamp, flag boolean, note text);
INSERT INTO source.v
SELECT g, 'name ' || g, g / 7.0, '2024-01-01'::timestamp + g * interval '1 hour',
       g % 3 = 0, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END
  FROM generate_series(1, 3000) g;
ANALYZE source.v;
-- Other column order and types: text, numeric, timestamptz, bigint.
CREATE TABLE public.v (note text, at timestamptz, flag boolean, amount numeric,
                       name text, id bigint PRIMARY KEY);
INSERT INTO tools.config (source, target, pkey, batchsize, trunc, parts, condition)
VALUES ('source.v', 'public.v', 'id', 500, true, 3, 'id % 10 <> 7');
SELECT statement FROM tools.run() \gexec

SELECT job_id, target, lower, upper, source_rows, target_rows,
       source_hash = target_hash AS same_hash, ok
  FROM tools.verify() ORDER BY job_id;

-- A row missing in the first part, an extra row in the second (its source
-- row is gone), a changed value in the third.
DELETE FROM public.v WHERE id = 10;
DELETE FROM source.v WHERE id = 1500;
UPDATE public.v SET amount = amount + 0.01 WHERE id = 2500;
SELECT job_id, lower, upper, source_rows, target_rows,
       source_hash = target_hash AS same_hash, ok
  FROM tools.verify(1) ORDER BY job_id;

-- Mended; and the condition applies on both sides: a row it leaves out of
-- the target is not the job's.
INSERT INTO public.v SELECT note, at, flag, amount, name, id FROM source.v WHERE id = 10;
DELETE FROM public.v WHERE id = 1500;
UPDATE public.v SET amount = amount - 0.01 WHERE id = 2500;
INSERT INTO public.v (id, name) VALUES (1507, 'left out by the condition');
SELECT bool_and(ok) AS all_ok FROM tools.verify();

-- Under other date and number styles, the same answer.
SET DateStyle = 'SQL, DMY';
SET extra_float_digits = -3;
SELECT bool_and(ok) AS all_ok FROM tools.verify();
RESET DateStyle;
RESET extra_float_digits;

SELECT * FROM tools.verify(42);

DROP TABLE source.v, public.v;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;

-- A text key whose collation differs between source ("C": uppercase first)
-- and target (ICU: letters together): each part is checked in the source's
-- order on both sides, so an exact copy verifies.
CREATE TABLE source.vc (k text COLLATE "C" PRIMARY KEY, n int);
INSERT INTO source.vc SELECT chr(65 + g % 26) || chr(97 + g % 26) || g, g FROM generate_series(1, 300) g;
INSERT INTO source.vc SELECT lower(chr(65 + g % 26)) || g, g FROM generate_series(1, 300) g;
ANALYZE source.vc;
CREATE TABLE public.vc (k text COLLATE "en-x-icu", n int);
-- A key whose type differs: int in the source, text in the target.
CREATE TABLE source.vt (id int PRIMARY KEY, n int);
INSERT INTO source.vt SELECT g, g FROM generate_series(1, 500) g;
ANALYZE source.vt;
CREATE TABLE public.vt (id text, n int);
INSERT INTO tools.config (source, target, pkey, batchsize, parts) VALUES
  ('source.vc', 'public.vc', 'k', 100, 3),
  ('source.vt', 'public.vt', 'id', 100, 2);
SELECT count(*) FROM tools.run();
CALL tools.start(1);
CALL tools.start(2);
CALL tools.start(3);
CALL tools.start(4);
CALL tools.start(5);
SELECT job_id, target, source_rows, target_rows, ok FROM tools.verify() ORDER BY job_id;
-- A changed row is still found in its part.
UPDATE public.vc SET n = -1 WHERE k = 'a26';
SELECT job_id, ok FROM tools.verify() ORDER BY job_id;

-- A condition naming a column the target lacks: the error says that the
-- condition applies to the target too (its context's first line; the
-- statement around it depends on the hash that the server can use).
ALTER TABLE source.vt ADD COLUMN only_here int DEFAULT 1;
UPDATE tools.config SET condition = 'only_here = 1' WHERE target = 'public.vt'::regclass;
DO $$
DECLARE
  msg text;
  ctx text;
BEGIN
  PERFORM * FROM tools.verify();
EXCEPTION WHEN undefined_column THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, ctx = PG_EXCEPTION_CONTEXT;
  RAISE NOTICE 'error: %', msg;
  RAISE NOTICE 'context: %', split_part(ctx, E'\n', 1);
END $$;

DROP TABLE source.vc, public.vc, source.vt, public.vt;
TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
