-- tools.start(): columns matched by name, keyset batches, what lands where.

-- Columns in another order, mixed-case and quoted names, a target column the
-- source lacks (it takes its default), a source column the target lacks (not
-- read), a generated column and an identity column in the target.
CREATE TABLE source."Orders" (
    "Id" bigint PRIMARY KEY,
    "Customer Name" text,
    amount numeric(10,2),
    created date,
    internal_note text
);
INSERT INTO source."Orders"
SELECT g, 'customer ' || g, g * 1.5, date '2026-01-01' + g % 365, 'secret'
  FROM generate_series(1, 1000) g;

CREATE TABLE public."Orders" (
    loaded_by text DEFAULT 'tools',
    created date,
    "Customer Name" text,
    total numeric GENERATED ALWAYS AS (amount * 2) STORED,
    amount numeric(10,2),
    "Id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY
);

INSERT INTO tools.config (source, target, pkey, batchsize)
VALUES ('source."Orders"', 'public."Orders"', 'Id', 300);
SELECT statement FROM tools.run();
CALL tools.start(1);

SELECT state, lastseq, rows, error, ts IS NOT NULL AS started, elapsed > '0' AS timed
  FROM tools.job WHERE job_id = 1;
SELECT count(*), count(DISTINCT "Id"), min("Id"), max("Id"),
       bool_and(loaded_by = 'tools') AS defaults,
       bool_and(total = amount * 2) AS generated
  FROM public."Orders";
-- Same rows, same values.
SELECT count(*) AS differences FROM (
  (SELECT "Id", "Customer Name", amount, created FROM source."Orders"
   EXCEPT ALL
   SELECT "Id", "Customer Name", amount, created FROM public."Orders")
  UNION ALL
  (SELECT "Id", "Customer Name", amount, created FROM public."Orders"
   EXCEPT ALL
   SELECT "Id", "Customer Name", amount, created FROM source."Orders")) d;

-- pkey given as a quoted identifier finds the same column.
UPDATE tools.config SET pkey = '"Id"', trunc = true;
SELECT statement FROM tools.run();
CALL tools.start(2);
SELECT state, lastseq, rows FROM tools.job WHERE job_id = 2;
SELECT count(*) FROM public."Orders";

-- Keys shared by many rows: a batch boundary never splits a group of equal
-- keys (batch of 3 over groups of 2 and 5), and nothing is lost or doubled.
CREATE TABLE source.dup (k smallint NOT NULL, v int);
INSERT INTO source.dup SELECT g / 5, g FROM generate_series(0, 99) g;
INSERT INTO source.dup SELECT 100 + g / 2, g FROM generate_series(0, 9) g;
CREATE TABLE public.dup (v int, k smallint);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.dup', 'public.dup', 'k', 3);
SELECT statement FROM tools.run('{dup}');
CALL tools.start(3);
SELECT state, lastseq, rows FROM tools.job WHERE job_id = 3;
SELECT count(*), count(DISTINCT (k, v)) FROM public.dup;

-- Without a batch size: everything in one statement.
CREATE TABLE public.dup2 (LIKE public.dup);
INSERT INTO tools.config (source, target, pkey) VALUES ('source.dup', 'public.dup2', 'k');
SELECT statement FROM tools.run('{dup2}');
CALL tools.start(4);
SELECT state, lastseq, rows FROM tools.job WHERE job_id = 4;
SELECT count(*) FROM public.dup2;

-- An empty source completes with nothing to copy.
CREATE TABLE source.empty (id int);
CREATE TABLE public.empty (id int);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.empty', 'public.empty', 'id', 10);
SELECT statement FROM tools.run('{empty}');
CALL tools.start(5);
SELECT state, lastseq, rows FROM tools.job WHERE job_id = 5;

-- A condition selects the rows a job copies.
CREATE TABLE public.half (LIKE public.dup);
INSERT INTO tools.config (source, target, pkey, condition, batchsize)
VALUES ('source.dup', 'public.half', 'k', 'v % 2 = 0', 7);
SELECT statement FROM tools.run('{half}');
CALL tools.start(6);
SELECT state, rows, (SELECT count(*) FROM public.half) AS target_rows,
       (SELECT count(*) FROM source.dup WHERE v % 2 = 0) AS source_rows
  FROM tools.job WHERE job_id = 6;

-- Rows whose key is NULL are never skipped silently: the job refuses them
-- before any row moves, and copies them knowingly left out by the condition.
CREATE TABLE source.nullkey (id int, v text);
INSERT INTO source.nullkey VALUES (1, 'a'), (NULL, 'b'), (2, 'c'), (NULL, 'd');
CREATE TABLE public.nullkey (id int, v text);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.nullkey', 'public.nullkey', 'id', 1);
SELECT statement FROM tools.run('{nullkey}');
CALL tools.start(7);
SELECT state, rows, error FROM tools.job WHERE job_id = 7;
SELECT count(*) FROM public.nullkey;
UPDATE tools.config SET condition = 'id IS NOT NULL' WHERE target = 'public.nullkey'::regclass;
CALL tools.start(7);
SELECT state, rows, lastseq FROM tools.job WHERE job_id = 7;
SELECT * FROM public.nullkey ORDER BY id;

TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
