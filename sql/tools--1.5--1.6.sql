/* sql/tools--1.5--1.6.sql: repair a run's targets where they differ from the sources */

\echo Use "ALTER EXTENSION tools UPDATE TO '1.6'" to load this file. \quit

CREATE PROCEDURE @extschema@.repair(run_id bigint DEFAULT NULL)
LANGUAGE c AS 'MODULE_PATHNAME', 'tools_repair';

COMMENT ON PROCEDURE @extschema@.repair(bigint) IS
    'makes each job''s range of the target equal to its source again, re-copying only the key ranges that differ, one transaction each';

