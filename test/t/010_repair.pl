# tools.repair() stopped at any point -- its backend terminated, or the
# server shut down in immediate mode -- leaves every key range it was
# repairing either as it was or equal to its source, and a new call ends
# with the target equal to the source.
#
# A copy over postgres_fdw, then the source changes the way an application
# keeps writing until the cutover: rows updated, deleted, and inserted
# below, inside and above the copied keys.  A trigger on the target stops
# the repair from inside a range's repair, at a chosen key (a changed row
# updated, an extra row deleted), so the stop points are exact, not timed.
# Last, two calls at once share a run in two parts, one of them stopped;
# and tools.wait() waits for a repair at its end.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ToolsFdw;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('repair');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
  CREATE TABLE public.items (id int PRIMARY KEY, v text, n int)
    WITH (autovacuum_enabled = off);
  INSERT INTO public.items SELECT g, md5(g::text), g FROM generate_series(1, 20000) g;
  CREATE TABLE public.items_moved (id int PRIMARY KEY, v text, n int);
  INSERT INTO public.items_moved
  SELECT g, md5(g::text), CASE WHEN g % 500 = 0 THEN -g ELSE g END FROM generate_series(1, 20000) g;
});
my $fdw = ToolsFdw::src_sql($node);
$node->safe_psql('postgres', qq{
  CREATE EXTENSION tools;
  $fdw
  CREATE TABLE public.items (id int PRIMARY KEY, v text, n int)
    WITH (autovacuum_enabled = off);
  INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('src.items', 'public.items', 'id', 5000);
  SELECT tools.run();
  CALL tools.start(1);
  CREATE FUNCTION public.stop_at() RETURNS trigger LANGUAGE plpgsql AS \$\$
  BEGIN
    IF coalesce(NEW.id, OLD.id) = current_setting('tools_test.stop_at', true)::int THEN
      IF current_setting('tools_test.how') = 'terminate' THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
      ELSE
        PERFORM pg_sleep(3600);
      END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
      RETURN OLD;
    END IF;
    RETURN NEW;
  END \$\$;
  CREATE TRIGGER stop_at BEFORE INSERT OR UPDATE OR DELETE ON public.items
    FOR EACH ROW EXECUTE FUNCTION public.stop_at();
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.items'), '20000', 'the copy');

# Start CALL tools.repair() in the background, and return its handle once
# pg_stat_activity shows it where $where, a condition on its row, says.
sub repair_stands
{
	my ($where, $name) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', 'CALL tools.repair()' ],
		'>', \$out, '2>', \$err);
	ok( $node->poll_query_until('postgres', qq{
		  SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE query = 'CALL tools.repair()' AND $where}),
		$name);
	return $h;
}

$node->safe_psql('src', q{
  UPDATE public.items SET v = 'changed' WHERE id IN (5, 7000, 12000, 19999);
  DELETE FROM public.items WHERE id BETWEEN 14000 AND 14010 OR id = 19000;
  INSERT INTO public.items VALUES (0, 'below', 0), (20500, 'above', 1);
});

my $differing = q{
  SELECT count(*) FROM ((SELECT id, v, n FROM src.items EXCEPT ALL SELECT id, v, n FROM public.items)
    UNION ALL (SELECT id, v, n FROM public.items EXCEPT ALL SELECT id, v, n FROM src.items)) d};
isnt($node->safe_psql('postgres', $differing), '0', 'the source changed since the copy');
my ($vrc, $vout, $verr) = $node->psql('postgres',
	'SET client_min_messages = debug1; SELECT ok FROM tools.verify()');
is($vout, 'f', 'verify sees it');
if ($node->safe_psql('postgres', 'SHOW server_version_num') >= 140000)
{
	like($verr, qr/tools job 1 hashes the rows of src\.items on server "src"$/m,
		'the source\'s server hashes its rows');
}
else
{
	unlike($verr, qr/hashes the rows of src\.items on server/,
		'before PostgreSQL 14, this server hashes the source\'s rows');
}

# Each key that stops the repair is in a chunk that differs; every chunk
# must be, after the stop, as before (all of its old rows) or repaired.
# Chunks of 3,000 rows: the remote server hashes seven of them.  The short
# way (PostgreSQL 14 on) repairs the rows written since the copy first, in
# one statement, which the stop at 7000 undoes; then the keys deleted,
# where the next two stop it.
my @stops = ([ 7000, 'terminate' ], [ 14005, 'immediate' ], [ 19000, 'terminate' ]);
foreach my $stop (@stops)
{
	my ($at, $how) = @$stop;
	my ($rc, $out, $err);
	{
		local $ENV{PGOPTIONS} =
		  "-c tools_test.stop_at=$at -c tools_test.how=$how -c tools.repair_chunk=3000";
		if ($how eq 'terminate')
		{
			($rc, $out, $err) = $node->psql('postgres', 'CALL tools.repair()');
		}
		else
		{
			my $h = repair_stands(q{wait_event = 'PgSleep'},
				"the repair stands at key $at, inside a range's repair");
			$node->stop('immediate');
			$h->finish;
			$node->start;
		}
	}
	isnt($rc, 0, "the repair stopped at key $at by $how") if $how eq 'terminate';
	is( $node->safe_psql('postgres', q{
		  SELECT count(*) FROM public.items t
		   WHERE NOT EXISTS (SELECT FROM src.items s WHERE s.id = t.id AND s.v = t.v AND s.n = t.n)
		     AND t.id NOT IN (5, 7000, 12000, 19000, 19999) AND t.id NOT BETWEEN 14000 AND 14010}),
		'0', "after the stop at $at: no row of the target is other than its source's or its copy's");
	is($node->safe_psql('postgres', 'SELECT count(*) - count(DISTINCT id) FROM public.items'),
		'0', "after the stop at $at: no key doubled");
	is( $node->safe_psql('postgres', q{
		  SELECT count(*) FROM src.items s WHERE s.id BETWEEN 1 AND 20000
		     AND NOT EXISTS (SELECT FROM public.items t WHERE t.id = s.id)}),
		'0', "after the stop at $at: no row of the copy that the source still has is missing");
}

$node->safe_psql('postgres', 'DROP TRIGGER stop_at ON public.items');
my ($rc, $out, $err);
my $short_way = $node->safe_psql('postgres', 'SHOW server_version_num') >= 140000;
{
	local $ENV{PGOPTIONS} = '-c tools.repair_chunk=3000 -c client_min_messages=debug1';
	($rc, $out, $err) = $node->psql('postgres', 'CALL tools.repair()');
}
is($rc, 0, 'a new call completes');
if ($short_way)
{
	like($err, qr/tools job 1: public\.items (differed from|equals) src\.items.* rows written on the source since the copy/,
		'the remote server read the rows written since the copy');
	# Neither table vacuumed yet: each side counts its keys in one pass.
	like($err, qr/tools job 1 counts the keys of src\.items in one pass over its rows, and those of public\.items in one pass over its rows/,
		'tables never vacuumed: the keys counted in one pass on each side');
}
else
{
	unlike($err, qr/written on the source since the copy/,
		'before PostgreSQL 14, every row is compared');
}
is($node->safe_psql('postgres', $differing), '0', 'the target equals the source');
is($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM tools.verify()'), 't', 'verify agrees');
($rc, $out, $err) = $node->psql('postgres', 'CALL tools.repair()');
like($err, qr/tools job 1: public\.items equals src\.items/, 'a call after it finds nothing to repair');

# Both tables vacuumed, as a copy days old is: the remote server counts its
# keys range by range through the key's index, and so does this one; rows
# deleted on the source, across the table and as a run, are found by them.
$node->safe_psql('src', 'VACUUM ANALYZE public.items');
$node->safe_psql('postgres', 'VACUUM ANALYZE public.items');
$node->safe_psql('src', q{
  DELETE FROM public.items WHERE id % 1000 = 17 OR id BETWEEN 3000 AND 3099;
  UPDATE public.items SET v = 'again' WHERE id % 1000 = 18;
});
{
	local $ENV{PGOPTIONS} = '-c client_min_messages=debug1';
	($rc, $out, $err) = $node->psql('postgres', 'CALL tools.repair()');
}
is($rc, 0, 'the repair after the vacuums completes');
like($err, qr/tools job 1 counts the keys of src\.items range by range through its index, and those of public\.items range by range through its index/,
	'vacuumed tables: the keys counted through the index on each side')
  if $short_way;
like($err, qr/tools job 1: public\.items differed from src\.items( in \d+ key ranges? of up to \d+ rows)? and now equals it; rows: 0 missing, 119 extra, 19 changed/,
	'the deleted rows and the changed ones repaired');
is($node->safe_psql('postgres', $differing), '0', 'the target equals the source again');

# The foreign table pointed at another table of the source's server since
# the copy: that table's rows are older than the copy, and 40 of them
# differ from the target's with their keys the same; every row is compared.
$node->safe_psql('postgres', q{ALTER FOREIGN TABLE src.items OPTIONS (SET table_name 'items_moved')});
isnt($node->safe_psql('postgres', $differing), '0', 'the source is another table now');
($rc, $out, $err) = $node->psql('postgres', 'CALL tools.repair()');
is($rc, 0, 'the repair of the other table completes');
like($err, qr/tools job 1: src\.items is not the relation its copy read, so every row of its range is compared/,
	'it says that the source is not the relation the copy read')
  if $short_way;
like($err, qr/tools job 1: public\.items differed from src\.items/, 'and repairs');
is($node->safe_psql('postgres', $differing), '0', 'the target equals the other table');
($rc, $out, $err) = $node->psql('postgres', 'CALL tools.repair()');
like($err, qr/tools job 1: public\.items equals src\.items in the job's range: in the 0 rows written on the source since/,
	'the next call takes the short way over the other table')
  if $short_way;

# Two calls at once over a run in two parts of the target, one of them
# terminated inside a repair statement if it reaches key 15000 (which of
# them repairs which part is theirs to share): after both, every row of the
# target is its source's or its copy's, no key doubled, and a call after
# them ends with the target equal to the source.
$node->safe_psql('postgres', q{
  UPDATE tools.config SET parts = 2, trunc = true;
  SELECT tools.run();
});
my $run = $node->safe_psql('postgres', 'SELECT max(run_id) FROM tools.run');
$node->safe_psql('postgres', $_) for split /\n/, $node->safe_psql('postgres',
	"SELECT 'CALL tools.start(' || job_id || ')' FROM tools.job WHERE run_id = $run ORDER BY job_id");
$node->safe_psql('postgres', q{
  CREATE TABLE public.items_copy AS SELECT * FROM public.items;
  CREATE TRIGGER stop_at BEFORE INSERT OR UPDATE OR DELETE ON public.items
    FOR EACH ROW EXECUTE FUNCTION public.stop_at();
});
$node->safe_psql('src', q{
  UPDATE public.items_moved SET v = 'parallel' WHERE id % 1000 = 19;
  DELETE FROM public.items_moved WHERE id IN (4000, 15000, 16000);
  INSERT INTO public.items_moved VALUES (-5, 'below', 0), (30000, 'above', 1);
});
my @calls;
for my $stop ('-c tools_test.stop_at=15000 -c tools_test.how=terminate', '')
{
	my %call = (out => '', err => '');
	local $ENV{PGOPTIONS} = "$stop -c tools.repair_chunk=3000";
	$call{run} = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', 'CALL tools.repair()' ],
		'>', \$call{out}, '2>', \$call{err});
	push @calls, \%call;
}
$_->{run}->finish for @calls;
is($node->safe_psql('postgres', 'SELECT count(*) - count(DISTINCT id) FROM public.items'),
	'0', 'after two calls at once, one stopped: no key doubled');
is( $node->safe_psql('postgres', q{
	  SELECT count(*) FROM public.items t
	   WHERE NOT EXISTS (SELECT FROM src.items s WHERE s.id = t.id AND s.v = t.v AND s.n = t.n)
	     AND NOT EXISTS (SELECT FROM public.items_copy c WHERE c.id = t.id AND c.v = t.v AND c.n = t.n)}),
	'0', 'after two calls at once, one stopped: every row is its source\'s or its copy\'s');
$node->safe_psql('postgres', 'DROP TRIGGER stop_at ON public.items');
($rc, $out, $err) = $node->psql('postgres', "CALL tools.repair($run)");
is($rc, 0, 'a call after them completes');
is($node->safe_psql('postgres', $differing), '0', 'the target equals the source after it');

# tools.wait() waits for a repair of the run, also where the repair holds
# no job's lock: at its end, where it looks for foreign keys to add back
# (held here by a lock on tools.deferred_constraint).
my ($in, $hout, $herr) = ('', '', '');
my $holder = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres') ],
	'<', \$in, '>', \$hout, '2>', \$herr);
$in .= "BEGIN; LOCK TABLE tools.deferred_constraint IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n";
$holder->pump until $hout =~ /locked/;
my $repair = repair_stands(q{wait_event_type = 'Lock'}, 'a repair waits at its end');
my ($wout, $werr) = ('', '');
is( $node->safe_psql('postgres', sprintf(q{
	  SELECT count(*) FILTER (WHERE objsubid = %d), count(*) FILTER (WHERE objsubid = %d)
	    FROM pg_locks WHERE locktype = 'advisory' AND granted}, 0x7435, 0x7430)),
	'1|0', 'it holds its run\'s repair lock and no job\'s');
my $wait = IPC::Run::start(
	[ 'psql', '-X', '-At', '-d', $node->connstr('postgres'), '-c', "SELECT count(*) FROM tools.wait($run)" ],
	'>', \$wout, '2>', \$werr);
ok( $node->poll_query_until('postgres', q{
	  SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM tools.wait(%'}),
	'tools.wait() runs');
ok( $node->poll_query_until('postgres', q{
	  SELECT count(*) = 1 FROM pg_stat_activity
	   WHERE query = 'CALL tools.repair()' AND wait_event_type = 'Lock'}),
	'the repair still waits');
ok($wait->pumpable, 'tools.wait() waits for it');
$in .= "COMMIT;\n";
$holder->finish;
$repair->finish;
$wait->finish;
is($wout, "1\n", 'tools.wait() returns once the repair has ended');

unlike(slurp_file($node->logfile), qr/terminated by signal [^9]/, 'no process crashed');

$node->stop;
done_testing();
