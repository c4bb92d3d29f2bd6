# A real schema, end to end: pgbench's tables with their foreign keys
# (pgbench -i --foreign-keys, then a pgbench run, so that the keyless
# pgbench_history has rows), a table with a serial key and one with an
# identity key, copied over postgres_fdw into a target made by pgbench
# itself with its keys and foreign keys but no rows.  Every table is
# truncated by its run, pgbench_accounts is cut into two parts, the
# foreign keys are deferred, and all jobs have one priority and run on
# workers.  Planned and run twice: the second run empties the targets
# again under their foreign keys.  Then every table equals its source,
# every foreign key is there and validated, the secondary index is valid,
# and the application's next INSERT with the defaults succeeds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ToolsFdw;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('pgbench');
$node->init;
$node->append_conf('postgresql.conf', 'max_worker_processes = 8');
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->command_ok([ 'pgbench', '-i', '-q', '-s', '2', '--foreign-keys', $node->connstr('src') ],
	'pgbench builds its schema with foreign keys on the source');
$node->command_ok([ 'pgbench', '-n', '-c', '2', '-t', '500', $node->connstr('src') ],
	'pgbench runs its workload on the source');
$node->safe_psql('src', q{
  CREATE TABLE public.orders (id serial PRIMARY KEY, aid int REFERENCES public.pgbench_accounts, note text);
  INSERT INTO public.orders (aid, note) SELECT 1 + g % 1000, 'o' || g FROM generate_series(1, 3000) g;
  CREATE TABLE public.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz, what text);
  INSERT INTO public.events (at, what)
    SELECT '2026-01-01'::timestamptz + g * interval '1 s', 'e' || g FROM generate_series(1, 2000) g;
  ANALYZE;
});

# The target: pgbench's tables, keys and foreign keys, no rows; the same
# two tables of the application; a secondary index.
$node->command_ok([ 'pgbench', '-i', '-q', '-I', 'dtpf', $node->connstr('postgres') ],
	'pgbench makes the target schema without rows');
my $fdw = ToolsFdw::src_sql($node, options => "use_remote_estimate 'true'");
$node->safe_psql('postgres', qq{
  CREATE TABLE public.orders (id serial PRIMARY KEY, aid int REFERENCES public.pgbench_accounts, note text);
  CREATE TABLE public.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz, what text);
  CREATE INDEX history_aid ON public.pgbench_history (aid);
  CREATE EXTENSION tools;
  $fdw
  ANALYZE src.pgbench_accounts;
  INSERT INTO tools.config (source, target, pkey, batchsize, trunc, defer_constraints, defer_indexes, parts, priority)
  VALUES ('src.pgbench_branches', 'public.pgbench_branches', 'bid', 1000, true, true, false, NULL, 1),
         ('src.pgbench_tellers', 'public.pgbench_tellers', 'tid', 1000, true, true, false, NULL, 1),
         ('src.pgbench_accounts', 'public.pgbench_accounts', 'aid', 20000, true, true, false, 2, 1),
         ('src.pgbench_history', 'public.pgbench_history', NULL, NULL, true, true, true, NULL, 1),
         ('src.orders', 'public.orders', 'id', 1000, true, true, false, NULL, 1),
         ('src.events', 'public.events', 'id', 1000, true, true, false, NULL, 1);
});

my @tables = qw(pgbench_branches pgbench_tellers pgbench_accounts pgbench_history orders events);

# Every table equals its source; $when names the moment in each test's name.
sub tables_equal
{
	my ($when) = @_;
	for my $t (@tables)
	{
		is( $node->safe_psql('postgres', qq{
			  SELECT count(*) FROM ((SELECT * FROM src.$t EXCEPT ALL SELECT * FROM public.$t)
			    UNION ALL (SELECT * FROM public.$t EXCEPT ALL SELECT * FROM src.$t)) d}),
			'0', "$when: $t equals its source");
	}
	return;
}

# The keyless history, which tools.repair() leaves alone, copied again
# whole by a trunc run of its own.
sub copy_history
{
	$node->safe_psql('postgres', q{SELECT tools.run('{public.pgbench_history}')});
	my $job = $node->safe_psql('postgres', 'SELECT max(job_id) FROM tools.job');
	$node->safe_psql('postgres', "CALL tools.start($job)");
	return;
}
for my $round (1, 2)
{
	$node->safe_psql('postgres', 'SELECT tools.run()');
	my $run = $node->safe_psql('postgres', 'SELECT max(run_id) FROM tools.run');
	is($node->safe_psql('postgres', "SELECT count(*) FROM tools.job WHERE run_id = $run"), '7',
		"round $round: seven jobs, the accounts in two parts");
	$node->safe_psql('postgres', "SELECT tools.launch($run, workers => 3)");
	is( $node->safe_psql('postgres', qq{
		  SELECT string_agg(DISTINCT state::text, ',') FROM tools.wait($run)}),
		'completed', "round $round: every target completes");
	tables_equal("round $round");
	is( $node->safe_psql('postgres', qq{
		  SELECT count(*) FILTER (WHERE NOT ok) FROM tools.verify($run)}),
		'0', "round $round: verify agrees for every job");
	is( $node->safe_psql('postgres', q{
		  SELECT string_agg(format('%s %s', conrelid::regclass, convalidated), ', '
		           ORDER BY conrelid::regclass::text, conname)
		    FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace}),
		'orders t, pgbench_accounts t, pgbench_history t, pgbench_history t, pgbench_history t, pgbench_tellers t',
		"round $round: every foreign key is back and validated");
	is( $node->safe_psql('postgres', q{
		  SELECT string_agg(k.conrelid::regclass::text, ', ' ORDER BY k.conrelid::regclass::text)
		    FROM pg_constraint k JOIN pg_index i ON i.indexrelid = k.conindid
		   WHERE k.contype = 'p' AND k.connamespace = 'public'::regnamespace AND i.indisvalid}),
		'events, orders, pgbench_accounts, pgbench_branches, pgbench_tellers',
		"round $round: every primary key is back, its index valid");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM tools.deferred_constraint'), '0',
		"round $round: no constraint is left deferred");
	is( $node->safe_psql('postgres', q{
		  SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = 'public.history_aid'::regclass}),
		't', "round $round: the secondary index is back and valid");
}

is($node->safe_psql('postgres', q{INSERT INTO public.orders (aid, note) VALUES (1, 'new') RETURNING id}),
	'3001', 'the next order takes the next serial key');
is($node->safe_psql('postgres', q{INSERT INTO public.events (at, what) VALUES (now(), 'new') RETURNING id}),
	'2001', 'the next event takes the next identity key');

# The cutover.  A third run copies while the application keeps writing to
# the source: pgbench's workload (accounts, tellers and branches updated,
# history rows added) and, meanwhile, orders deleted, changed and added
# below and above the keys.  Then tools.repair() copies again what changed
# under the keyed jobs, in two calls at once, a trunc run copies the
# keyless history again, and every table equals its source.
$node->safe_psql('postgres', 'SELECT tools.run()');
my $run = $node->safe_psql('postgres', 'SELECT max(run_id) FROM tools.run');
my ($bench_out, $bench_err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '2', '-T', '3', $node->connstr('src') ],
	'>', \$bench_out, '2>', \$bench_err);
$node->safe_psql('postgres', "SELECT tools.launch($run, workers => 3)");
$node->safe_psql('src', q{
  DELETE FROM public.orders WHERE id % 7 = 0;
  UPDATE public.orders SET note = 'changed' WHERE id % 11 = 0;
  INSERT INTO public.orders (id, aid, note) VALUES (0, 1, 'below'), (5000, 1, 'above');
});
is( $node->safe_psql('postgres', "SELECT string_agg(DISTINCT state::text, ',') FROM tools.wait($run)"),
	'completed', 'the run under the workload completes');
$bench->finish;
is($?, 0, 'the workload ran beside it');
isnt( $node->safe_psql('postgres', "SELECT count(*) FILTER (WHERE NOT ok) FROM tools.verify($run)"),
	'0', 'the source changed under the copy');
# Two calls at once, as xargs -P makes them: they share the run's jobs.
my @calls = map {
	my %call = (out => '', err => '');
	$call{run} = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-c', "CALL tools.repair($run)", $node->connstr('postgres') ],
		'>', \$call{out}, '2>', \$call{err});
	\%call;
} 1 .. 2;
my $err = '';
for my $call (@calls)
{
	$call->{run}->finish;
	is($?, 0, 'a tools.repair() call of two at once completes');
	note($call->{err});
	$err .= $call->{err};
}
like($err, qr/tools job \d+ has no key: a range of it cannot be copied again/,
	'they leave the keyless history to a trunc run');
copy_history();
tables_equal('after the cutover');
is( $node->safe_psql('postgres', "SELECT count(*) FILTER (WHERE NOT ok) FROM tools.verify($run)"),
	'0', 'after the cutover: verify agrees for every job');

# A cutover that shortens its window: tools.repair() while the application
# still writes (pgbench's workload runs through the whole call, and orders
# change as it starts), then once more after the writes stop.  The second
# call reads what was written since the first began, and every table
# equals its source.
my $history = q{SELECT count(*) FROM public.pgbench_history};
my $written = $node->safe_psql('src', $history);
($bench_out, $bench_err) = ('', '');
$bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '2', '-T', '300', $node->connstr('src') ],
	'>', \$bench_out, '2>', \$bench_err);
ok($node->poll_query_until('src', "SELECT ($history) > $written"), 'the workload writes again');
$node->safe_psql('src', q{
  DELETE FROM public.orders WHERE id % 13 = 0;
  UPDATE public.orders SET note = 'again' WHERE id % 17 = 0;
  INSERT INTO public.orders (id, aid, note) VALUES (-1, 1, 'below'), (6000, 1, 'above');
});
$written = $node->safe_psql('src', $history);
my ($rc, $out);
($rc, $out, $err) = $node->psql('postgres', "CALL tools.repair($run)");
is($rc, 0, 'a repair while the workload writes completes');
cmp_ok($node->safe_psql('src', $history), '>', $written, 'the workload wrote while it ran');
$bench->signal('TERM');
$bench->finish;
($rc, $out, $err) = $node->psql('postgres', "CALL tools.repair($run)");
is($rc, 0, 'the repair after the writes stop completes');
copy_history();
tables_equal('after the repairs under and after the writes');
is($node->safe_psql('postgres', q{INSERT INTO public.orders (aid, note) VALUES (1, 'new') RETURNING id > 5000}),
	't', 'after the cutover: the next order takes a key above the source\'s');

is( $node->safe_psql('postgres', q{
	  SELECT count(*) FROM tools.job WHERE error IS NOT NULL}),
	'0', 'no job failed on the way');

unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no process crashed');
$node->stop;
done_testing();
