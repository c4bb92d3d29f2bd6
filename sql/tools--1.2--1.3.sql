/* sql/tools--1.2--1.3.sql: secondary indexes rebuilt after the copy */

\echo Use "ALTER EXTENSION tools UPDATE TO '1.3'" to load this file. \quit

ALTER TABLE @extschema@.config
    ADD COLUMN defer_indexes boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN @extschema@.config.defer_indexes IS
    'drop the target''s secondary indexes before its jobs copy, and rebuild them when the last job of the run on that target completes';

-- The indexes a job dropped, until they are built again.  A row goes in the
-- transaction that drops its index and leaves in the one that builds it
-- again, so that no crash loses a definition.
CREATE TABLE @extschema@.deferred_index (
    target     regclass NOT NULL,
    index_name name NOT NULL,
    definition text NOT NULL,
    comment    text,
    job_id     bigint NOT NULL,
    deferred   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (target, index_name)
);

COMMENT ON TABLE @extschema@.deferred_index IS
    'secondary indexes dropped for the copy into their table, with the statement that builds them again';
COMMENT ON COLUMN @extschema@.deferred_index.definition IS
    'CREATE INDEX statement, every name schema-qualified';
COMMENT ON COLUMN @extschema@.deferred_index.job_id IS
    'the job that dropped the index';

-- Its definitions are run as SQL by the job that builds them again: a role
-- sees and writes only the rows of tables whose owner's rights it has, as
-- only such a role may defer a table's indexes.
ALTER TABLE @extschema@.deferred_index ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_rights ON @extschema@.deferred_index
    USING (pg_catalog.pg_has_role(
        (SELECT c.relowner FROM pg_catalog.pg_class AS c
          WHERE c.oid OPERATOR(pg_catalog.=) target::pg_catalog.oid),
        'USAGE'));

-- pg_dump keeps the definitions of indexes dropped and not yet rebuilt.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.deferred_index', '');
