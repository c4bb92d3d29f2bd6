# Citus targets: a distributed table, a reference table and a Citus local
# table on a single-node Citus cluster (the coordinator holds the shards),
# copied from a local table and from a postgres_fdw foreign table, then
# repaired after the sources change, and after rows change on the targets
# alone; and a distributed table with a foreign key to a reference table,
# repaired past that key (tools.repair() writes through Citus: no statement of it that
# writes a target compares text or correlates a subquery with the target,
# which Citus refuses for its tables).  Citus plans every insert
# into its tables and puts the rows in its shards; the coordinator's own
# table of the same name stays empty and is never read.  Writing the way
# COPY does into that table would report rows that no query finds, so a
# job into such a target writes with INSERT, and every row lands where
# Citus reads it.  Skipped where Citus is not installed (test/lib.sh
# builds it from ../shared/vendor when it can).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ToolsFdw;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "Citus is not installed ($pkglibdir/citus.so)"
  unless -f "$pkglibdir/citus.so";

my $node = PostgreSQL::Test::Cluster->new('citus');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'citus'
max_worker_processes = 16
});
$node->start;
my $host = $node->host;
my $port = $node->port;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
  CREATE TABLE public.items (id int PRIMARY KEY, grp int, v text);
  INSERT INTO public.items SELECT g, g % 7, md5(g::text) FROM generate_series(1, 20000) g;
  ANALYZE;
});
my $fdw = ToolsFdw::src_sql($node, limit => 'items');
$node->safe_psql('postgres', qq{
  CREATE EXTENSION citus;
  SELECT citus_set_coordinator_host('$host', $port);
  SELECT citus_set_node_property('$host', $port, 'shouldhaveshards', true);
  CREATE EXTENSION tools;
  $fdw
  CREATE SCHEMA source;
  CREATE TABLE source.items (id int PRIMARY KEY, grp int, v text);
  INSERT INTO source.items SELECT g, g % 7, md5(g::text) FROM generate_series(1, 20000) g;
  ANALYZE source.items;
  CREATE TABLE public.dist (id int PRIMARY KEY, grp int, v text);
  SELECT create_distributed_table('public.dist', 'id');
  CREATE TABLE public.dist_fdw (id int PRIMARY KEY, grp int, v text);
  SELECT create_distributed_table('public.dist_fdw', 'id');
  CREATE TABLE public.ref (id int PRIMARY KEY, grp int, v text);
  SELECT create_reference_table('public.ref');
  CREATE TABLE public.loc (id int PRIMARY KEY, grp int, v text);
  SELECT citus_add_local_table_to_metadata('public.loc');
  INSERT INTO tools.config (source, target, pkey, batchsize, trunc, parts) VALUES
    ('source.items', 'public.dist', 'id', 3000, true, 2),
    ('src.items', 'public.dist_fdw', 'id', 3000, true, NULL),
    ('source.items', 'public.ref', 'id', 3000, true, NULL),
    ('source.items', 'public.loc', 'id', 3000, true, NULL);
});

my ($ret, $out, $err);

# Each target holds exactly its source, as Citus reads it, and verify()
# agrees for the latest run; $when names the moment in each test's name.
sub targets_equal
{
	my ($when) = @_;
	for my $t ([ 'dist', 'source.items' ], [ 'dist_fdw', 'src.items' ], [ 'ref', 'source.items' ],
		[ 'loc', 'source.items' ])
	{
		my ($target, $source) = @$t;
		is( $node->safe_psql('postgres', qq{
			  SELECT count(*) FROM ((SELECT * FROM $source EXCEPT ALL SELECT * FROM public.$target)
			    UNION ALL (SELECT * FROM public.$target EXCEPT ALL SELECT * FROM $source)) d}),
			'0', "$when: $target holds exactly its source, as Citus reads it");
	}
	is( $node->safe_psql('postgres', q{
		  SELECT bool_and(ok) FROM tools.verify((SELECT max(run_id) FROM tools.job))}),
		't', "$when: verify agrees");
	return;
}

# Run twice: the second run empties each target (TRUNCATE through Citus)
# before copying it again.
for my $round (1, 2)
{
	my @calls = split /\n/, $node->safe_psql('postgres', 'SELECT statement FROM tools.run()');
	$node->safe_psql('postgres', $_) for @calls;
	is( $node->safe_psql('postgres', q{
		  SELECT string_agg(DISTINCT state::text, ', '), count(*), sum(rows)
		    FROM tools.job WHERE run_id = (SELECT max(run_id) FROM tools.job)}),
		'completed|5|80000', "round $round: every job completes, with all its rows");
	targets_equal("round $round");
}

# The cutover: both sources change (rows updated, deleted, and inserted
# below, inside and above the copied keys), and tools.repair() makes every
# Citus target equal to its source again, writing through Citus.
my $changes = q{
  UPDATE %s SET v = 'changed' WHERE mod(id, 1000) = 3;
  DELETE FROM %s WHERE mod(id, 1000) = 4 OR id BETWEEN 5000 AND 5050;
  INSERT INTO %s VALUES (0, 0, 'below'), (-7, 0, 'below'), (5025, 0, 'inside'), (30000, 0, 'above');
};
$node->safe_psql('postgres', sprintf($changes, ('source.items') x 3));
$node->safe_psql('src', sprintf($changes, ('public.items') x 3));
($ret, $out, $err) = $node->psql('postgres', 'CALL tools.repair()');
is($ret, 0, 'tools.repair() of the Citus targets completes');
like($err, qr/tools job \d+: public\.dist differed from source\.items/, 'it repairs the distributed table');
targets_equal('after the repair');

# Rows changed on the targets alone: a repair of every row, a chunk of keys
# and hashes at a time on each side, puts them back.
$node->safe_psql('postgres', q{
  UPDATE public.dist SET v = 'target' WHERE id IN (10, 15000);
  DELETE FROM public.ref WHERE id = 20;
  INSERT INTO public.loc VALUES (25000, 0, 'extra');
});
($ret, $out, $err) = $node->psql('postgres', 'SET tools.repair_chunk = 5000; CALL tools.repair(all_rows => true)');
is($ret, 0, 'a repair of every row of the Citus targets completes');
targets_equal('after a repair of every row');

is( $node->safe_psql('postgres', q{
	  SELECT pg_relation_size('public.dist') + pg_relation_size('public.dist_fdw')
	       + pg_relation_size('public.ref') + pg_relation_size('public.loc')}),
	'0', 'nothing was written into the coordinator\'s shell tables');

# A distributed table whose foreign key references a reference table,
# the schema Citus is made for, copied with defer_constraints.  The source
# gains a group and an order in it: the order's job, repaired first, meets
# the key, which tools.repair() then drops (its statement's first try, in
# a subtransaction that Citus carries to the shards, undone), and adds back
# validated once the group is there too.
$node->safe_psql('postgres', q{
  CREATE TABLE source.grp (id int PRIMARY KEY, v text);
  INSERT INTO source.grp SELECT g, 'g' || g FROM generate_series(0, 20) g;
  CREATE TABLE source.ord (id int PRIMARY KEY, grp int REFERENCES source.grp, v text);
  INSERT INTO source.ord SELECT g, g % 7, md5(g::text) FROM generate_series(1, 5000) g;
  CREATE TABLE public.grp (id int PRIMARY KEY, v text);
  SELECT create_reference_table('public.grp');
  CREATE TABLE public.ord (id int PRIMARY KEY, grp int CONSTRAINT ord_grp REFERENCES public.grp, v text);
  SELECT create_distributed_table('public.ord', 'id');
  INSERT INTO tools.config (source, target, pkey, batchsize, priority, defer_constraints) VALUES
    ('source.ord', 'public.ord', 'id', 1000, 1, true),
    ('source.grp', 'public.grp', 'id', 1000, 2, true);
});
$node->safe_psql('postgres', $_)
  for split /\n/, $node->safe_psql('postgres', q{SELECT statement FROM tools.run('{public.ord,public.grp}')});
$node->safe_psql('postgres', q{
  INSERT INTO source.grp VALUES (50, 'new');
  INSERT INTO source.ord VALUES (9000, 50, 'new');
  UPDATE source.ord SET v = 'changed' WHERE id = 10;
});
($ret, $out, $err) = $node->psql('postgres', 'CALL tools.repair()');
is($ret, 0, 'the repair of Citus targets joined by a foreign key completes');
like($err, qr/foreign key "ord_grp" of public\.ord is dropped while tools\.repair\(\) writes/,
	'it drops the key when the key refuses a row');
is( $node->safe_psql('postgres', q{
	  SELECT (SELECT count(*) FROM ((SELECT * FROM source.ord EXCEPT ALL SELECT * FROM public.ord)
	           UNION ALL (SELECT * FROM public.ord EXCEPT ALL SELECT * FROM source.ord)) d)
	       + (SELECT count(*) FROM ((SELECT * FROM source.grp EXCEPT ALL SELECT * FROM public.grp)
	           UNION ALL (SELECT * FROM public.grp EXCEPT ALL SELECT * FROM source.grp)) d)}),
	'0', 'both Citus targets hold exactly their sources');
is( $node->safe_psql('postgres', q{
	  SELECT string_agg(conname || ' ' || convalidated, ', ') FROM pg_constraint
	   WHERE conrelid = 'public.ord'::regclass AND contype = 'f'}),
	'ord_grp true', 'the foreign key is back and validated');

# The reason is told at DEBUG1.
$node->safe_psql('postgres', q{
  UPDATE tools.config SET parts = NULL;
  SELECT count(*) FROM tools.run('{public.dist}');
});
my $last = $node->safe_psql('postgres', 'SELECT max(job_id) FROM tools.job');
($ret, $out, $err) = $node->psql('postgres', qq{
  SET client_min_messages = debug1;
  CALL tools.start($last);
});
like($err, qr/writes into public\.dist with INSERT: another extension plans the target's inserts/,
	'the job says why it writes with INSERT');

unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no process crashed');
$node->stop;
done_testing();
