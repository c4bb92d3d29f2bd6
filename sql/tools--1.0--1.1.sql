/* sql/tools--1.0--1.1.sql: keys of any ordered type, tables split into parts */

\echo Use "ALTER EXTENSION tools UPDATE TO '1.1'" to load this file. \quit

ALTER TABLE @extschema@.config
    ADD COLUMN parts integer CHECK (parts OPERATOR(pg_catalog.>) 0);

COMMENT ON COLUMN @extschema@.config.pkey IS
    'key of the source that orders the batches: a column, or several separated by commas';
COMMENT ON COLUMN @extschema@.config.parts IS
    'jobs that tools.run() plans for this row, each over its own range of the key; NULL or 1: one job';

ALTER TABLE @extschema@.job
    ADD COLUMN lastkey text[],
    ADD COLUMN lower text,
    ADD COLUMN upper text;

-- Positions recorded by 1.0, whose keys were integers, carry over.
UPDATE @extschema@.job SET lastkey = ARRAY[lastseq::pg_catalog.text]
 WHERE lastseq IS NOT NULL;

COMMENT ON COLUMN @extschema@.job.lastseq IS
    'highest key copied by a committed batch, for a key of one integer column';
COMMENT ON COLUMN @extschema@.job.lastkey IS
    'highest key copied by a committed batch, a text per key column; the next batch starts above it';
COMMENT ON COLUMN @extschema@.job.lower IS
    'lowest value of the first key column in the job''s part, included; NULL: no lower end';
COMMENT ON COLUMN @extschema@.job.upper IS
    'value of the first key column where the job''s part ends, excluded; NULL: no upper end';
