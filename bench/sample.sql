-- bench/sample.sql: follow one tools job from a connection of its own, and
-- print a line per sample: rows, elapsed seconds (as the job records them at
-- each batch's commit) and the private memory (RssAnon, kB) of the backend
-- running it, read from /proc (the bench runs as superuser).  Samples every
-- 10 ms from the moment the job's CALL is seen running (waiting up to 60 s
-- for it) until it is no longer running, so that even a job of a fraction
-- of a second gives a few dozen; then the job's last record.  One
-- connection and one statement: no process is started per sample.
-- psql variable: :job, the job's id.
SET bench.job = :'job';
CREATE TEMP TABLE sample (n serial, rows bigint, elapsed float8, rss bigint);

DO $$
DECLARE
    followed bigint := current_setting('bench.job')::bigint;
    backend int;
    status text;
    deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
    -- the backend of the job's CALL, unless the job ended before it was seen
    -- (pg_stat_activity is read anew after pg_stat_clear_snapshot() only)
    LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT pid INTO backend FROM pg_stat_activity
         WHERE query LIKE format('CALL tools.start(%s)%%', followed) AND state = 'active';
        EXIT WHEN backend IS NOT NULL;
        IF (SELECT j.state IN ('completed', 'failed') FROM tools.job AS j
             WHERE j.job_id = followed) THEN
            RETURN;
        END IF;
        IF clock_timestamp() > deadline THEN
            RAISE 'job % was not seen running', followed;
        END IF;
        PERFORM pg_sleep(0.005);
    END LOOP;
    LOOP
        status := pg_read_file(format('/proc/%s/status', backend), 0, 8192, true);
        INSERT INTO sample (rows, elapsed, rss)
        SELECT j.rows, coalesce(extract(epoch FROM j.elapsed), 0),
               (regexp_match(status, 'RssAnon:\s+(\d+)'))[1]::bigint
          FROM tools.job AS j WHERE j.job_id = followed;
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity
                               WHERE pid = backend AND state = 'active');
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;

-- the job's own last record, once its call has ended
INSERT INTO sample (rows, elapsed)
SELECT rows, coalesce(extract(epoch FROM elapsed), 0) FROM tools.job
 WHERE job_id = :job;

SELECT rows, elapsed, rss FROM sample ORDER BY n;
