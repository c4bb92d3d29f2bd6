-- The catalog the specification fixes: schema, enum order, tables, view.
CREATE EXTENSION tools;

SELECT e.enumlabel
  FROM pg_enum e
 WHERE e.enumtypid = 'tools.state'::regtype
 ORDER BY e.enumsortorder;

SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS "default"
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'tools'::regnamespace AND c.relkind IN ('r', 'v')
 ORDER BY c.relname, a.attnum;

-- (Without the IN that PostgreSQL 14 on writes before a procedure's arguments.)
SELECT p.proname, p.prokind,
       regexp_replace(pg_get_function_arguments(p.oid), '(^|, )IN ', '\1', 'g') AS arguments,
       pg_get_function_result(p.oid) AS result, p.prosecdef AS security_definer
  FROM pg_proc p
 WHERE p.pronamespace = 'tools'::regnamespace
 ORDER BY p.proname;

-- pg_dump keeps the user's configuration.
SELECT c.relname
  FROM pg_extension e, unnest(e.extconfig) AS x(oid)
  JOIN pg_class c ON c.oid = x.oid
 WHERE e.extname = 'tools'
 ORDER BY 1;

-- Constraints a user meets when configuring.
CREATE SCHEMA source;
CREATE TABLE source.s (id int PRIMARY KEY, v text);
CREATE TABLE public.s (id int PRIMARY KEY, v text);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.s', 'public.s', 'id', 0);
INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.s', 'public.s', 'id', -5);
INSERT INTO tools.config (source, target, pkey) VALUES ('source.s', 'source.s', 'id');
INSERT INTO tools.config (source, target, pkey) VALUES ('source.s', 'public.s', NULL);
INSERT INTO tools.config (source, target, pkey) VALUES ('source.nosuch', 'public.s', 'id');
DROP TABLE source.s, public.s;
TRUNCATE tools.config, tools.job RESTART IDENTITY;

-- The rows that two relations do not share, as multisets of the columns
-- cols: what later tests compare a copy with its source by.
CREATE FUNCTION public.differing(source regclass, target regclass, cols text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE d bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM ((SELECT %3$s FROM %1$s EXCEPT ALL SELECT %3$s FROM %2$s)
                  UNION ALL (SELECT %3$s FROM %2$s EXCEPT ALL SELECT %3$s FROM %1$s)) d',
                 source, target, cols) INTO d;
  RETURN d;
END $$;

-- Make the statistics of what this session read visible to its next
-- statement (pg_stat_user_tables), which later tests count rows read by.
-- From PostgreSQL 15 on, a function does it; before, the session sends them
-- when it goes idle, once half a second passed since it last sent them.
CREATE PROCEDURE public.flush_stats() LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('server_version_num')::int >= 150000 THEN
    EXECUTE 'SELECT pg_catalog.pg_stat_force_next_flush()';
  ELSE
    PERFORM pg_catalog.pg_sleep(0.6);
  END IF;
END $$;

-- A postgres_fdw server for a database of this cluster, over its socket.
CREATE FUNCTION public.loopback_server(server name, dbname text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %L, port %L, dbname %L)',
                 server, split_part(current_setting('unix_socket_directories'), ',', 1),
                 current_setting('port'), dbname);
END $$;
