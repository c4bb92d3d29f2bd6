# A postgres_fdw source read with COPY over the job's own connection,
# stopped in the middle of a batch: the job's process canceled while it
# waits for rows, then the remote server's process terminated while it
# streams them.  Each time the batch rolls back whole, the job fails with
# its committed batches, no connection is left behind, and the resume
# copies exactly the rest.
#
# The remote view items_gated reads public.gate(id), which waits at key
# 3001 for as long as the test holds advisory lock 42 on the remote
# database, in the job's COPY (the statements that find the bounds of the
# batches pass): the job then stands in its fourth batch of 1000 rows, its
# COPY open, and the test acts without timing anything.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ToolsFdw;
use ToolsGate;

my $node = PostgreSQL::Test::Cluster->new('remote');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
  CREATE TABLE public.items (id int PRIMARY KEY, v text);
  INSERT INTO public.items SELECT g, 'v' || g FROM generate_series(1, 5000) g;
  CREATE FUNCTION public.gate(id int) RETURNS boolean LANGUAGE plpgsql AS $$
  BEGIN
    IF id = 3001 AND current_query() LIKE 'COPY %' THEN
      PERFORM pg_advisory_lock_shared(42);
      PERFORM pg_advisory_unlock_shared(42);
    END IF;
    RETURN true;
  END $$;
  CREATE VIEW public.items_gated AS SELECT * FROM public.items WHERE public.gate(id);
  ANALYZE;
});
my $fdw = ToolsFdw::src_sql($node, limit => 'items_gated, items');
$node->safe_psql('postgres', qq{
  CREATE EXTENSION tools;
  $fdw
  CREATE TABLE public.items (v text, id int PRIMARY KEY);
  INSERT INTO tools.config (source, target, pkey, batchsize, trunc)
  VALUES ('src.items_gated', 'public.items', 'id', 1000, true);
  SELECT tools.run();
});

my $gate = ToolsGate->new($node, 'src');

# The job's COPY on the remote server, waiting at the gate.
my $copy = q{
  SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l USING (pid)
   WHERE a.datname = 'src' AND a.application_name = 'tools job 1'
     AND a.query LIKE 'COPY %' AND l.locktype = 'advisory' AND l.objid = 42 AND NOT l.granted};
my $connections = q{
  SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'tools job %'};
my $job = q{SELECT format('%s %s %s', state, rows, lastseq) FROM tools.job WHERE job_id = 1};

# Start the job from a session of its own; return once its COPY waits.
sub start_job
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', 'CALL tools.start(1)' ],
		'>', \$out, '2>', \$err);
	$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($copy) c")
	  or die 'the job did not reach the gate';
	return ($h, \$err);
}

# Before PostgreSQL 14 there is no COPY path: the job reads through the
# foreign table, as documented, and copies exactly.
if ($node->safe_psql('postgres', 'SHOW server_version_num') < 140000)
{
	my ($rc, $out, $err) = $node->psql('postgres',
		'SET client_min_messages = debug1; CALL tools.start(1)');
	like($err, qr/tools job 1 reads src\.items_gated through the foreign table: PostgreSQL 14 or later is needed/,
		'before PostgreSQL 14 the job reads through the foreign table');
	is($node->safe_psql('postgres', $job), 'completed 5000 5000', 'and completes');
	is($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM tools.verify(1)'), 't',
		'every row copied once');
}
else
{
	# 1. Cancel the job's process while it waits for the rows of batch 4.
	$gate->close;
	my ($h, $err) = start_job();
	like( $node->safe_psql('postgres', q{
		    SELECT query FROM pg_stat_activity
		     WHERE application_name = 'tools job 1' AND query LIKE 'COPY %'}),
		qr/^COPY \(SELECT s\.c1::integer, s\.c2::pg_catalog\.text FROM \(SELECT id, v FROM public\.items_gated WHERE \(\(id > 3000\)\) AND \(\(id <= 4000\)\)\) AS s\(c1, c2\)\) TO STDOUT \(FORMAT binary\)$/,
		'the remote server runs COPY of the batch\'s key range, in binary form, each column cast to the type it was chosen for');
	ok( $node->poll_query_until('postgres', q{
		  SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE application_name = 'tools job 1' AND query =
		     'SELECT id FROM public.items_gated WHERE ((id > 4000)) ORDER BY id ASC NULLS LAST LIMIT 1::bigint OFFSET 999::bigint'}),
		'meanwhile, the job\'s second connection has asked for the upper end of the next batch');
	is( $node->safe_psql('postgres', q{
		  SELECT pg_cancel_backend(pid) FROM pg_stat_activity
		   WHERE query = 'CALL tools.start(1)'}),
		't', 'cancel the job');
	$h->finish;
	like($$err, qr/ERROR:  canceling statement due to user request/,
		'the call fails at once, while the remote server still holds the rows back');
	is($node->safe_psql('postgres', $job), 'failed 3000 3000',
		'the batch in progress rolled back; the committed batches stay');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM public.items'), '3000',
		'the target holds exactly the committed batches');
	ok($node->poll_query_until('postgres', "SELECT ($connections) = 0"),
		'no connection of the job is left on the remote server');
	$gate->open;

	# 2. Terminate the remote server's process while it streams the batch.
	$gate->close;
	($h, $err) = start_job();
	$node->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM ($copy) c");
	$h->finish;
	like($$err, qr/ERROR:  terminating connection due to administrator command/,
		'the call fails with the remote server\'s error');
	is($node->safe_psql('postgres', $job), 'failed 3000 3000',
		'the batch rolled back; the committed batches stay');
	ok($node->poll_query_until('postgres', "SELECT ($connections) = 0"),
		'no connection of the job is left');
	$gate->open;

	# 3. Resume: exactly the rest.
	$node->safe_psql('postgres', 'CALL tools.start(1)');
	is($node->safe_psql('postgres', $job), 'completed 5000 5000', 'the resume completes the job');
	is( $node->safe_psql('postgres', q{
		  SELECT count(*) FROM ((SELECT id, v FROM src.items EXCEPT ALL SELECT id, v FROM public.items)
		    UNION ALL (SELECT id, v FROM public.items EXCEPT ALL SELECT id, v FROM src.items)) d}),
		'0', 'no row lost or doubled');
	is($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM tools.verify(1)'), 't',
		'verify agrees');
}

# 4. A remote column changes its type between two batches of one call:
# the binary form was chosen for the old type at the call's first batch.
# The remote server casts each column to that type, so the rows after the
# change are converted there, never read as the old type's bytes (a text
# of four characters would read as a wrong integer).  The job waits at key
# 3001 in a trigger on its target, on the test's lock on this database.
$node->safe_psql('postgres', q{
  CREATE FUNCTION public.hold_at_3001() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF NEW.id = 3001 THEN
      PERFORM pg_advisory_lock_shared(42);
      PERFORM pg_advisory_unlock_shared(42);
    END IF;
    RETURN NEW;
  END $$;
});

# A remote table of 5,000 rows (id, n = id + 1000), its foreign table, a
# target whose n is of type n_type and whose inserts wait at key 3001 while
# the test holds advisory lock 42, and the configuration that copies it in
# batches of 1,000.
sub held_table
{
	my ($name, $n_type) = @_;
	$node->safe_psql('src', qq{
	  CREATE TABLE public.$name (id int PRIMARY KEY, n int);
	  INSERT INTO public.$name SELECT g, g + 1000 FROM generate_series(1, 5000) g;
	});
	$node->safe_psql('postgres', qq{
	  IMPORT FOREIGN SCHEMA public LIMIT TO ($name) FROM SERVER src INTO src;
	  CREATE TABLE public.$name (id int PRIMARY KEY, n $n_type);
	  CREATE TRIGGER hold_at_3001 BEFORE INSERT ON public.$name
	    FOR EACH ROW EXECUTE FUNCTION public.hold_at_3001();
	  INSERT INTO tools.config (source, target, pkey, batchsize)
	  VALUES ('src.$name', 'public.$name', 'id', 1000);
	});
}
held_table('nums', 'int');
my $local_gate = ToolsGate->new($node, 'postgres');

# Plan a run of target, close the local gate and start its job from a
# session of its own; return once the job waits at key 3001 of its target.
sub start_held_job
{
	my ($target) = @_;
	my $run = $node->safe_psql('postgres', q{SELECT max(run_id) + 1 FROM tools.run});
	$node->safe_psql('postgres', "SELECT tools.run('{$target}')");
	my $job = $node->safe_psql('postgres', "SELECT job_id FROM tools.job WHERE run_id = $run");
	$local_gate->close;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', "CALL tools.start($job)" ],
		'>', \$out, '2>', \$err);
	$node->poll_query_until('postgres', qq{
	  SELECT count(*) = 1 FROM pg_stat_activity a JOIN pg_locks l USING (pid)
	   WHERE a.query = 'CALL tools.start($job)' AND l.locktype = 'advisory'
	     AND l.objid = 42 AND NOT l.granted})
	  or die 'the job did not reach its gate';
	return ($job, $h);
}

my ($job2, $h2) = start_held_job('public.nums');
my ($out3, $err3) = ('', '');
my $alter = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('src'), '-c',
	  'ALTER TABLE public.nums ALTER COLUMN n TYPE text' ],
	'>', \$out3, '2>', \$err3);
$node->poll_query_until('src', q{
  SELECT count(*) = 0 FROM pg_stat_activity
   WHERE query LIKE 'ALTER TABLE public.nums%' AND wait_event_type IS DISTINCT FROM 'Lock'
     AND state = 'active'})
  or die 'the ALTER neither ran nor waited';
$local_gate->open;
$h2->finish;
$alter->finish;
is($err3, '', 'the remote column changed its type during the job');
is($node->safe_psql('src', q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	WHERE attrelid = 'public.nums'::regclass AND attname = 'n'}), 'text',
	'the remote column is text now');
is($node->safe_psql('postgres', "SELECT format('%s %s', state, rows) FROM tools.job WHERE job_id = $job2"),
	'completed 5000', 'the job completed');
is($node->safe_psql('postgres', q{
	  SELECT format('%s %s %s', count(*), count(DISTINCT id), count(*) FILTER (WHERE n <> id + 1000))
	    FROM public.nums}),
	'5000 5000 0', 'every row has its value: none read as another type');

# 5. A remote table rewritten while the job's next read waits for its
# lock.  A rewrite (ALTER TABLE ... TYPE) is not MVCC-safe: a snapshot
# taken before it commits sees the new table empty.  The job stands in
# batch 4 at its target's gate; on the remote server a session holds the
# table, the ALTER waits behind it, and the job's next read waits behind
# the ALTER.  When the holder ends, the ALTER commits, then the read runs.
# A read whose snapshot was taken before its lock would see no row and
# call the job completed with 4000 rows, or skip a batch's range; the job
# must copy every row.
held_table('rw', 'bigint');
my ($job3, $h4) = start_held_job('public.rw');
my ($out5, $err5, $out6, $err6) = ('', '', '', '');
my $holder = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('src'), '-c',
	  'BEGIN; LOCK TABLE public.rw IN ACCESS SHARE MODE; SELECT pg_sleep(3600)' ],
	'>', \$out5, '2>', \$err5);
$node->poll_query_until('src', q{
  SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK TABLE public.rw%'
     AND wait_event = 'PgSleep'})
  or die 'the holder did not take its lock';
my $rewrite = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('src'), '-c',
	  'ALTER TABLE public.rw ALTER COLUMN n TYPE bigint' ],
	'>', \$out6, '2>', \$err6);
$node->poll_query_until('src', q{
  SELECT count(*) = 1 FROM pg_locks
   WHERE relation = 'public.rw'::regclass AND mode = 'AccessExclusiveLock' AND NOT granted})
  or die 'the ALTER did not wait';
$local_gate->open;
$node->poll_query_until('src', q{
  SELECT count(*) = 2 FROM pg_locks WHERE relation = 'public.rw'::regclass AND NOT granted})
  or die 'the job\'s next read did not wait behind the ALTER';
$node->safe_psql('src', q{
  SELECT pg_terminate_backend(pid) FROM pg_stat_activity
   WHERE query LIKE 'BEGIN; LOCK TABLE public.rw%'});
$holder->finish;
$rewrite->finish;
$h4->finish;
is($err6, '', 'the remote table was rewritten while the job waited to read it');
is($node->safe_psql('postgres', "SELECT format('%s %s', state, rows) FROM tools.job WHERE job_id = $job3"),
	'completed 5000', 'the job completed with every row');
is($node->safe_psql('postgres', q{
	  SELECT format('%s %s %s', count(*), count(DISTINCT id), count(*) FILTER (WHERE n <> id + 1000))
	    FROM public.rw}),
	'5000 5000 0', 'the target holds every row once, with its value');

$node->stop;
done_testing();
