# The extension's own lifecycle under running jobs: what a worker does when
# the rows or the tables that it keeps its bookkeeping in vanish under it,
# and why the extension cannot be dropped while indexes it deferred are not
# built again.
#
# Jobs read their source through public.gate(id), which waits at key 3001
# for as long as the test holds advisory lock 42: a job then stands inside
# its fourth batch of 1000 rows, after three committed, and the test acts
# without timing anything.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ToolsGate;

my $node = PostgreSQL::Test::Cluster->new('lifecycle');
$node->init;
$node->append_conf('postgresql.conf', 'max_worker_processes = 4');
$node->start;

my $setup = q{
  CREATE EXTENSION tools;
  CREATE SCHEMA IF NOT EXISTS source;
  DROP TABLE IF EXISTS source.s, public.t;
  CREATE TABLE source.s (id int PRIMARY KEY, v text);
  INSERT INTO source.s SELECT g, 'v' || g FROM generate_series(1, 5000) g;
  ANALYZE source.s;
  CREATE TABLE public.t (id int, v text);
  CREATE INDEX t_v ON public.t (v);
};
my $gate = ToolsGate->new($node, 'postgres');
$gate->install_function;
my $workers = q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tools worker'};

# Launch the one job of a new run with a worker, gated; return once it waits.
sub launch_gated
{
	my ($config) = @_;
	$node->safe_psql('postgres', $config . q{ SELECT tools.run(); });
	$gate->close;
	$node->safe_psql('postgres', 'SELECT tools.launch(workers => 1)');
	$node->poll_query_until('postgres', q{
	  SELECT count(*) = 1 FROM pg_locks
	   WHERE locktype = 'advisory' AND objid = 42 AND NOT granted})
	  or die 'the job did not reach the gate';
	return;
}

# 1. DROP EXTENSION under a running worker.  The worker's batch fails when
# it records itself, and the worker leaves: no loop over the missing
# tables, no log flood, and it obeys no terminate because it is gone.
$node->safe_psql('postgres', $setup);
launch_gated(q{INSERT INTO tools.config (source, target, pkey, batchsize, condition)
               VALUES ('source.s', 'public.t', 'id', 1000, 'public.gate(id)');});
$node->safe_psql('postgres', 'DROP EXTENSION tools');
my $log_start = -s $node->logfile;
$gate->open;
ok($node->poll_query_until('postgres', "SELECT ($workers) = 0"),
	'the worker leaves once the extension is dropped');
my $log = slurp_file($node->logfile, $log_start);
my $missing = () = $log =~ /relation "tools\.job" does not exist/g;
ok($missing >= 1 && $missing <= 4,
	"the worker reported the missing table a few times, not in a loop ($missing)");
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM public.t'), '3000|3000',
	'the target holds the batches committed before the drop, each row once');

# 2. The run deleted under a running worker: the batch cannot be recorded
# and rolls back, the job stops there, and the worker leaves.
$node->safe_psql('postgres', $setup);
launch_gated(q{INSERT INTO tools.config (source, target, pkey, batchsize, condition)
               VALUES ('source.s', 'public.t', 'id', 1000, 'public.gate(id)');});
$node->safe_psql('postgres', 'DELETE FROM tools.run');
$gate->open;
ok($node->poll_query_until('postgres', "SELECT ($workers) = 0"),
	'the worker leaves once its run is deleted');
like(slurp_file($node->logfile), qr/job 1 was deleted while it was copying/,
	'the job says why it stopped');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM public.t'), '3000|3000',
	'nothing was copied after the job was deleted');

# 3. The rights on the extension's tables revoked under a running worker
# of a role that is not superuser: the batch cannot be recorded and rolls
# back, and the worker leaves instead of looping.
$node->safe_psql('postgres', q{
  DROP EXTENSION tools;
  CREATE ROLE alice LOGIN;
  GRANT CREATE ON SCHEMA public TO alice;
  GRANT USAGE ON SCHEMA source TO alice;
});
$node->safe_psql('postgres', $setup);
$node->safe_psql('postgres', q{
  GRANT USAGE ON SCHEMA tools TO alice;
  GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tools TO alice;
  GRANT SELECT ON source.s TO alice;
  ALTER TABLE public.t OWNER TO alice;
  INSERT INTO tools.config (source, target, pkey, batchsize, condition)
  VALUES ('source.s', 'public.t', 'id', 1000, 'public.gate(id)');
  SELECT tools.run();
});
$gate->close;
$node->psql('postgres', 'SELECT tools.launch(workers => 1)', extra_params => [ '-U', 'alice' ]);
$node->poll_query_until('postgres', q{
  SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 42 AND NOT granted})
  or die 'the job did not reach the gate';
$node->safe_psql('postgres', 'REVOKE ALL ON ALL TABLES IN SCHEMA tools FROM alice');
$gate->open;
ok($node->poll_query_until('postgres', "SELECT ($workers) = 0"),
	'the worker leaves once its rights on the bookkeeping are revoked');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM public.t'), '3000|3000',
	'nothing was copied after the rights were revoked');
is($node->safe_psql('postgres', 'SELECT rows FROM tools.job'), '3000',
	'the job records the committed batches');

# 4. A job that deferred its target's index fails; its configuration is
# deleted.  The index's definition is the only record of it: dropping the
# extension, or its schema, is refused until it is built again.
$node->safe_psql('postgres', 'DROP EXTENSION tools');
$node->safe_psql('postgres', $setup);
$node->safe_psql('postgres', q{
  INSERT INTO tools.config (source, target, pkey, batchsize, condition, defer_indexes)
  VALUES ('source.s', 'public.t', 'id', 1000, 'public.gate(id) AND 1 / (3500 - id) IS NOT NULL', true);
  SELECT tools.run();
});
my ($ret, $out, $err) = $node->psql('postgres', 'CALL tools.start(1)');
like($err, qr/division by zero/, 'the job fails midway');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_indexes WHERE indexname = 't_v'}), '0',
	'its target\'s index is dropped, deferred');
$node->safe_psql('postgres', 'DELETE FROM tools.config');
($ret, $out, $err) = $node->psql('postgres', 'DROP EXTENSION tools');
like($err, qr/cannot drop extension tools while indexes or constraints deferred by its jobs are not built again/,
	'DROP EXTENSION is refused');
like($err, qr/DETAIL:  tools\.deferred_index and tools\.deferred_constraint hold the only definition of 1 index or constraint that a job dropped before its copy: index t_v on t\./,
	'the error names the index');
($ret, $out, $err) = $node->psql('postgres', 'DROP SCHEMA tools CASCADE');
like($err, qr/cannot drop extension tools/, 'so is DROP SCHEMA tools CASCADE');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tools.deferred_index'), '1',
	'the definition is kept');
($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION citext; DROP EXTENSION citext');
is($ret, 0, 'other extensions still drop');
$node->safe_psql('postgres', q{
  DO $$ BEGIN EXECUTE (SELECT definition FROM tools.deferred_index); END $$;
  DELETE FROM tools.deferred_index;
  DROP EXTENSION tools;
});
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_indexes WHERE indexname = 't_v'}), '1',
	'built by hand from its definition, the index is back, and the extension drops');

unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no process crashed');
$node->stop;
done_testing();
