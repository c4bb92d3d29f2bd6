# Several tools.repair() calls at once over a run whose targets are joined
# by foreign keys (parents, children, grandchildren, each configuration
# with defer_constraints, two of them in two parts), over postgres_fdw.
# Each round the source changes as an application writes: parents deleted
# with their children, children moved to other parents, rows added below
# and above the keys, grandchildren deleted, moved and added.  Then three
# calls at once share the run: a call one of whose rows a key refuses
# waits for the others and tries again, and drops the keys where it is
# still refused.  In every other round, one of the three is terminated by
# a trigger of the targets at a row it writes, drawn at random.  The calls
# that are not stopped end without an error; after the round (and one more
# call where one was stopped) every target equals its source, with its
# foreign keys in place and valid, none left recorded as dropped.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ToolsFdw;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('repair_calls');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
  CREATE TABLE public.p (id int PRIMARY KEY, v text);
  CREATE TABLE public.c (id int PRIMARY KEY, pid int NOT NULL REFERENCES public.p ON DELETE CASCADE, v text);
  CREATE TABLE public.gc (id int PRIMARY KEY, cid int NOT NULL REFERENCES public.c ON DELETE CASCADE, v text);
  SELECT setseed(0.5);
  INSERT INTO public.p SELECT g, 'p' || g FROM generate_series(1, 2000) g;
  INSERT INTO public.c SELECT g, 1 + (random() * 1999)::int, 'c' || g FROM generate_series(1, 6000) g;
  INSERT INTO public.gc SELECT g, 1 + (random() * 5999)::int, 'g' || g FROM generate_series(1, 6000) g;
  ANALYZE public.p, public.c, public.gc;
});
my $fdw = ToolsFdw::src_sql($node);
$node->safe_psql('postgres', qq{
  CREATE EXTENSION tools;
  $fdw
  CREATE TABLE public.p (id int PRIMARY KEY, v text);
  CREATE TABLE public.c (id int PRIMARY KEY, pid int NOT NULL CONSTRAINT c_pid REFERENCES public.p, v text);
  CREATE TABLE public.gc (id int PRIMARY KEY, cid int NOT NULL CONSTRAINT gc_cid REFERENCES public.c, v text);
  INSERT INTO tools.config (source, target, pkey, batchsize, defer_constraints, parts, priority) VALUES
    ('src.p', 'public.p', 'id', 500, true, 2, 1),
    ('src.c', 'public.c', 'id', 500, true, 2, 2),
    ('src.gc', 'public.gc', 'id', 500, true, NULL, 3);
  CREATE FUNCTION public.stop() RETURNS trigger LANGUAGE plpgsql AS \$\$
  BEGIN
    IF current_setting('tools_test.stop', true) = 'on' AND random() < 0.03 THEN
      PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    RETURN NULL;
  END \$\$;
});
$node->safe_psql('postgres', $_) for split /\n/,
  $node->safe_psql('postgres', 'SELECT statement FROM tools.run()');
for my $t (qw(p c gc))
{
	$node->safe_psql('postgres',
		"CREATE TRIGGER stop AFTER INSERT OR UPDATE OR DELETE ON public.$t FOR EACH ROW EXECUTE FUNCTION public.stop()");
}

# The source's writes of round $round: the same for a given round.
sub change
{
	my ($round) = @_;
	$node->safe_psql('src', qq{
  SELECT setseed($round / 100.0);
  DELETE FROM public.p WHERE id IN (SELECT id FROM public.p ORDER BY random() LIMIT 30);
  UPDATE public.c SET pid = (SELECT id FROM public.p ORDER BY random() + c.id * 0 LIMIT 1), v = v || 'm'
   WHERE id IN (SELECT id FROM public.c ORDER BY random() LIMIT 60);
  UPDATE public.p SET v = v || 'u' WHERE id IN (SELECT id FROM public.p ORDER BY random() LIMIT 30);
  INSERT INTO public.p SELECT m - g, 'below' FROM (SELECT min(id) AS m FROM public.p) x, generate_series(1, 10) g;
  INSERT INTO public.p SELECT m + g, 'above' FROM (SELECT max(id) AS m FROM public.p) x, generate_series(1, 10) g;
  INSERT INTO public.c SELECT m + g, (SELECT id FROM public.p ORDER BY random() + g * 0 LIMIT 1), 'above'
    FROM (SELECT max(id) AS m FROM public.c) x, generate_series(1, 40) g;
  INSERT INTO public.c SELECT m - g, (SELECT min(id) FROM public.p), 'below'
    FROM (SELECT min(id) AS m FROM public.c) x, generate_series(1, 5) g;
  DELETE FROM public.gc WHERE id IN (SELECT id FROM public.gc ORDER BY random() LIMIT 40);
  UPDATE public.gc SET cid = (SELECT id FROM public.c ORDER BY random() + gc.id * 0 LIMIT 1)
   WHERE id IN (SELECT id FROM public.gc ORDER BY random() LIMIT 40);
  INSERT INTO public.gc SELECT m + g, (SELECT id FROM public.c ORDER BY random() + g * 0 LIMIT 1), 'above'
    FROM (SELECT max(id) AS m FROM public.gc) x, generate_series(1, 40) g;
});
	return;
}

my $state = q{
  SELECT (SELECT count(*) FROM ((SELECT * FROM src.p EXCEPT ALL SELECT * FROM public.p)
            UNION ALL (SELECT * FROM public.p EXCEPT ALL SELECT * FROM src.p)) d)
       + (SELECT count(*) FROM ((SELECT * FROM src.c EXCEPT ALL SELECT * FROM public.c)
            UNION ALL (SELECT * FROM public.c EXCEPT ALL SELECT * FROM src.c)) d)
       + (SELECT count(*) FROM ((SELECT * FROM src.gc EXCEPT ALL SELECT * FROM public.gc)
            UNION ALL (SELECT * FROM public.gc EXCEPT ALL SELECT * FROM src.gc)) d),
         (SELECT string_agg(conname || ' ' || convalidated, ', ' ORDER BY conname) FROM pg_constraint
           WHERE contype = 'f' AND connamespace = 'public'::regnamespace),
         (SELECT count(*) FROM tools.deferred_constraint)};

my ($waited, $dropped, $stopped) = (0, 0, 0);
for my $round (1 .. 10)
{
	change($round);
	my $stop = $round % 2 == 0;
	my @calls;
	for my $i (1 .. 3)
	{
		my %call = (out => '', err => '', stop => $stop && $i == 1);
		local $ENV{PGOPTIONS} = '-c tools.repair_chunk=10' . ($call{stop} ? ' -c tools_test.stop=on' : '');
		$call{run} = IPC::Run::start(
			[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', 'CALL tools.repair()' ],
			'>', \$call{out}, '2>', \$call{err});
		push @calls, \%call;
	}
	my $failed = 0;
	for my $call (@calls)
	{
		$call->{run}->finish;
		my $rc = $?;
		$waited++ if $call->{err} =~ /this call waits for the other repairs of the run to end/;
		$dropped++ if $call->{err} =~ /is dropped while tools\.repair\(\) writes/;
		if ($call->{stop} && $rc != 0)
		{
			like($call->{err}, qr/terminating connection due to administrator command/,
				"round $round: the call to stop was stopped");
			$stopped++;
			$failed++;
			next;
		}
		is($rc, 0, "round $round: a call that is not stopped ends without an error")
		  or diag($call->{err});
	}
	if ($failed)
	{
		my ($rc, $out, $err) = $node->psql('postgres', 'CALL tools.repair()');
		is($rc, 0, "round $round: a call after the stopped one completes") or diag($err);
	}
	is($node->safe_psql('postgres', $state), '0|c_pid true, gc_cid true|0',
		"round $round: every target equals its source, its keys valid");
}
note("calls that waited: $waited, that dropped the keys: $dropped, stopped: $stopped");

unlike(slurp_file($node->logfile), qr/terminated by signal [^9]/, 'no process crashed');
$node->stop;
done_testing();
