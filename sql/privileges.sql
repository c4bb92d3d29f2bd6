-- A role that is not superuser plans and runs jobs with the grants the
-- README lists; a missing right on the source or target is the server's
-- permission error, and nothing changes.
CREATE ROLE regress_tools_user;
GRANT USAGE ON SCHEMA tools TO regress_tools_user;
GRANT SELECT ON tools.config TO regress_tools_user;
GRANT SELECT, INSERT, UPDATE ON tools.run, tools.job TO regress_tools_user;
GRANT SELECT ON tools.report TO regress_tools_user;

CREATE TABLE source.ps (id int PRIMARY KEY, v text);
INSERT INTO source.ps SELECT g, 'v' || g FROM generate_series(1, 30) g;
CREATE TABLE public.p (id int, v text);
INSERT INTO public.p VALUES (0, 'kept');
GRANT USAGE ON SCHEMA source TO regress_tools_user;
GRANT INSERT ON public.p TO regress_tools_user;
INSERT INTO tools.config (source, target, pkey, batchsize, trunc) VALUES ('source.ps', 'public.p', 'id', 10, true);

SET ROLE regress_tools_user;
SELECT statement FROM tools.run();
-- No right on the source yet: refused before the target is emptied.
CALL tools.start(1);
RESET ROLE;
SELECT state, error, (SELECT count(*) FROM public.p) AS target_rows FROM tools.job WHERE job_id = 1;

GRANT SELECT ON source.ps TO regress_tools_user;
SET ROLE regress_tools_user;
-- No TRUNCATE on the trunc target.
CALL tools.start(1);
RESET ROLE;
SELECT state, error, (SELECT count(*) FROM public.p) AS target_rows FROM tools.job WHERE job_id = 1;

GRANT TRUNCATE ON public.p TO regress_tools_user;
SET ROLE regress_tools_user;
CALL tools.start(1);
SELECT run_id, target, state, rows FROM tools.report;
RESET ROLE;
SELECT count(*), count(DISTINCT id), min(id) FROM public.p;

-- Both functions run with the caller's rights.
SELECT proname, prosecdef FROM pg_proc WHERE pronamespace = 'tools'::regnamespace ORDER BY 1;

TRUNCATE tools.config, tools.run, tools.job RESTART IDENTITY;
DROP TABLE public.p;
REVOKE ALL ON SCHEMA tools, source FROM regress_tools_user;
REVOKE ALL ON ALL TABLES IN SCHEMA tools, source FROM regress_tools_user;
DROP ROLE regress_tools_user;
