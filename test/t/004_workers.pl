# Runs driven by background workers: tools.launch(), tools.cancel(),
# tools.wait() and tools.progress while jobs run.
#
# Every job reads its source through public.gate(id), which waits at key
# 3001 for as long as the test holds advisory lock 42: the jobs then stand
# still after 3 committed batches of 1000 rows, and the test looks at them
# without timing anything.  Every launch comes from a psql session that
# disconnects at once: workers outlive it.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ToolsGate;

my $node = PostgreSQL::Test::Cluster->new('workers');
$node->init;
# Three worker slots are left for tools: the logical replication launcher
# takes one.  No parallel query takes any.
$node->append_conf('postgresql.conf', qq{
max_worker_processes = 4
max_parallel_workers_per_gather = 0
});
$node->start;

$node->safe_psql('postgres', q{
  CREATE EXTENSION tools;
  CREATE ROLE alice LOGIN;
  GRANT USAGE ON SCHEMA tools TO alice;
  GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tools TO alice;
  CREATE SCHEMA source AUTHORIZATION alice;
  GRANT CREATE ON SCHEMA public TO alice;
});
ToolsGate->new($node, 'postgres')->install_function;
$node->safe_psql('postgres', q{
  SET ROLE alice;
  CREATE TABLE source.s1 (id int PRIMARY KEY, v text);
  INSERT INTO source.s1 SELECT g, 'v' || g FROM generate_series(1, 5000) g;
  CREATE TABLE source.s2 AS SELECT * FROM source.s1;
  CREATE TABLE source.s3 AS SELECT * FROM source.s1;
  CREATE TABLE source.s4 AS SELECT * FROM source.s1;
  ALTER TABLE source.s2 ADD PRIMARY KEY (id);
  ALTER TABLE source.s3 ADD PRIMARY KEY (id);
  ALTER TABLE source.s4 ADD PRIMARY KEY (id);
  ANALYZE source.s1, source.s2, source.s3, source.s4;
  CREATE TABLE public.t1 (v text, id int PRIMARY KEY);
  CREATE TABLE public.t2 (LIKE public.t1 INCLUDING ALL);
  CREATE TABLE public.t3 (LIKE public.t1 INCLUDING ALL);
  CREATE TABLE public.t4 (LIKE public.t1 INCLUDING ALL);
});
$node->safe_psql('postgres', q{
  INSERT INTO tools.config (source, target, pkey, priority, condition, batchsize, trunc)
  SELECT format('source.s%s', i)::regclass, format('public.t%s', i)::regclass, 'id', 1,
         'public.gate(id)', 1000, true
    FROM generate_series(1, 4) i;
  -- Priorities order the jobs; they are no barrier (run 3).
  UPDATE tools.config SET priority = 2 WHERE target = 'public.t4'::regclass;
});

# psql as alice, from a session that disconnects at once.
sub alice
{
	my ($sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-U', 'alice' ]);
	return ($rc, $out, $err);
}

my $gate = ToolsGate->new($node, 'postgres');
# Wait until n processes wait at the gate.
sub at_gate
{
	my ($n) = @_;
	$node->poll_query_until('postgres', qq{
	  SELECT count(*) = $n FROM pg_locks
	   WHERE locktype = 'advisory' AND objid = 42 AND NOT granted})
	  or die "$n processes did not reach the gate";
}

my $workers = q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tools worker'};

# Run 1: four jobs of the same priority, three worker slots.
$node->safe_psql('postgres', 'SELECT tools.run(); SELECT tools.estimate(exact => true);');
$gate->close;
my ($rc, $out, $err) = alice('SELECT tools.launch(workers => 5)');
is($out, '3', 'launch starts the workers that the free slots allow');
like($err, qr/WARNING:  started 3 of 4 workers for run 1/, 'and warns of the missing ones');
at_gate(3);

is( $node->safe_psql('postgres', q{
	  SELECT string_agg(DISTINCT usename || ' ' || application_name, ', ')
	    FROM pg_stat_activity WHERE backend_type = 'tools worker'}),
	'alice tools run 1', 'workers run as the role that launched them, named after their run');
is( $node->safe_psql('postgres', q{SELECT count(*) FROM tools.job WHERE state = 'running'}),
	'3', 'jobs of the same priority run at the same time');
is( $node->safe_psql('postgres', q{
	  SELECT string_agg(format('%s %s %s %s', rows, total, percent, rate > 0 AND eta > '0'), ', ')
	    FROM tools.progress WHERE state = 'running'}),
	join(', ', ('3000 5000 60.0 t') x 3),
	'progress: rows, total, percent, a rate and the time left of each running job');
is( $node->safe_psql('postgres', q{
	  SELECT string_agg(format('%s %s', target, state), ', ' ORDER BY target::text)
	    FROM tools.report WHERE run_id = 1}),
	't1 running, t2 running, t3 running, t4 pending',
	'report: the targets whose jobs a worker runs are running');

($rc, $out, $err) = alice('SELECT tools.launch()');
like($err, qr/ERROR:  could not start a worker for run 1\nDETAIL:  All background worker slots are in use \(max_worker_processes is 4\)/,
	'no free slot: a clear error');

my $running = $node->safe_psql('postgres', q{SELECT min(job_id) FROM tools.job WHERE state = 'running'});
($rc, $out, $err) = $node->psql('postgres', "CALL tools.start($running)");
like($err, qr/ERROR:  job $running is already running\nDETAIL:  Process \d+ is running it/,
	'a CALL of a job that a worker runs is refused');

($rc, $out, $err) = alice('SELECT tools.cancel()');
is($out, '3', 'cancel stops the three workers');
is($node->safe_psql('postgres', $workers), '0', 'and returns once they are gone');
is( $node->safe_psql('postgres', q{
	  SELECT string_agg(format('%s %s %s', state, rows, error), ', ' ORDER BY job_id) FROM tools.job}),
	join(', ', ('failed 3000 canceling statement due to user request') x 3, 'pending 0 '),
	'the batches in progress rolled back; the jobs failed with their committed batches');
is( $node->safe_psql('postgres', q{
	  SELECT count(*) FROM public.t1 NATURAL FULL JOIN public.t2 NATURAL FULL JOIN public.t3}),
	'3000', 'each target holds exactly its committed batches');

$gate->open;
($rc, $out, $err) = alice('SELECT tools.launch(workers => 2)');
is($out, '2', 'a new launch takes the canceled jobs and the pending one');
is( $node->safe_psql('postgres', 'SELECT string_agg(format(\'%s %s %s\', target, state, rows), \', \') FROM tools.wait(1)'),
	't1 completed 5000, t2 completed 5000, t3 completed 5000, t4 completed 5000',
	'wait returns the final report');
is($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM tools.verify(1)'), 't',
	'every target equals its source');
is($node->safe_psql('postgres', $workers), '0', 'the workers end when no job is left');

# Run 2: a worker terminated in a job leaves it recorded running with
# nobody at it, which the views show failed; the next launch takes it and
# resumes it.  Jobs 1 and 2 of the run only.
$node->safe_psql('postgres', q{SELECT tools.run('{public.t1, public.t2}')});
$gate->close;
($rc, $out, $err) = alice('SELECT tools.launch(workers => 1)');
at_gate(1);
my $first = $node->safe_psql('postgres', 'SELECT min(job_id) FROM tools.job WHERE run_id = 2');
$node->safe_psql('postgres', q{
  SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'tools worker'});
$node->poll_query_until('postgres', "SELECT ($workers) = 0") or die 'the worker did not end';
is( $node->safe_psql('postgres', "SELECT state FROM tools.job WHERE job_id = $first"),
	'running', 'a terminated worker leaves its job recorded running');
is( $node->safe_psql('postgres', "SELECT format('%s %s %s', state, rows, rate IS NULL) FROM tools.progress WHERE job_id = $first"),
	'failed 3000 t', 'progress shows it failed, with its rows and no rate');
is( $node->safe_psql('postgres', "SELECT state FROM tools.report WHERE run_id = 2 AND target = 'public.t1'::regclass"),
	'failed', 'and so does the report');
$gate->open;
($rc, $out, $err) = alice('SELECT tools.launch(workers => 1)');
is( $node->safe_psql('postgres', 'SELECT string_agg(format(\'%s %s\', state, rows), \', \') FROM tools.wait(2)'),
	'completed 5000, completed 5000', 'the next launch resumes it');
is($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM tools.verify(2)'), 't',
	'no row lost or doubled');

# Run 3: a job that a client's CALL runs is not taken by a worker; the
# worker's job, of priority 2, does not wait for the CALL's, of priority 1.
$node->safe_psql('postgres', q{SELECT tools.run('{public.t3, public.t4}')});
my ($a, $b) = split /\n/, $node->safe_psql('postgres', 'SELECT job_id FROM tools.job WHERE run_id = 3 ORDER BY job_id');
$gate->close;
my ($call_out, $call_err) = ('', '');
my $call = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', "CALL tools.start($a)" ],
	'>', \$call_out, '2>', \$call_err);
at_gate(1);
($rc, $out, $err) = alice('SELECT tools.launch(workers => 1)');
at_gate(2);
is( $node->safe_psql('postgres', q{
	  SELECT (l.classid::int8 << 32 | l.objid::int8)
	    FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	   WHERE a.backend_type = 'tools worker' AND l.locktype = 'advisory' AND l.objsubid = 29744}),
	$b, 'the worker takes the job that no CALL runs, of priority 2 while one of priority 1 runs');
$gate->open;
$call->finish;
is($call_err, '', 'the CALL completes its job');
is( $node->safe_psql('postgres', 'SELECT string_agg(format(\'%s %s\', state, rows), \', \') FROM tools.wait(3)'),
	'completed 5000, completed 5000', 'and the worker its own');
is($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM tools.verify(3)'), 't',
	'every target equals its source');

$node->stop;
done_testing();
