# defer_indexes across crashes: a job that defers its target's indexes,
# killed with SIGKILL (the server restarts) while it copies and again while
# it builds them back, keeps every definition it dropped; the same CALL then
# finishes the copy and builds each index once, as it was.
#
# Kill points are exact, not timed: the copy is stopped by a trigger on the
# target at a chosen row, the build by a function of an index expression at
# a chosen row.  Indexes are built in name order, so the
# second kill comes after the first index (dr_a) was built and committed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('defer_indexes');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
  CREATE EXTENSION tools;
  CREATE SCHEMA source;
  CREATE TABLE source.dr (id bigint PRIMARY KEY, v text);
  INSERT INTO source.dr SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
  CREATE TABLE public.dr (id bigint PRIMARY KEY, v text);
  CREATE FUNCTION public.stop_at(id bigint, what text) RETURNS boolean LANGUAGE plpgsql AS $$
  BEGIN
    IF id::text = current_setting('tools_test.' || what, true) THEN
      EXECUTE 'COPY (SELECT 1) TO PROGRAM ''kill -9 $PPID''';
    END IF;
    RETURN true;
  END $$;
  CREATE FUNCTION public.stop_copy() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM public.stop_at(NEW.id, 'copy');
    RETURN NEW;
  END $$;
  CREATE TRIGGER stop_copy AFTER INSERT ON public.dr
    FOR EACH ROW EXECUTE FUNCTION public.stop_copy();
  -- An index expression that kills its backend at the chosen row.
  CREATE FUNCTION public.key_of(id bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
  BEGIN
    PERFORM public.stop_at(id, 'build');
    RETURN id;
  END $$;
  CREATE INDEX dr_a ON public.dr (v);
  CREATE INDEX dr_b ON public.dr (public.key_of(id)) WHERE id > 10;
  CREATE INDEX dr_c ON public.dr (v DESC, id);
  CREATE TABLE public.dr_before AS
  SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE i.indrelid = 'public.dr'::regclass;
  INSERT INTO tools.config (source, target, pkey, batchsize, defer_indexes)
  VALUES ('source.dr', 'public.dr', 'id', 1000, true);
  SELECT tools.run();
});

# Test clusters run with restart_after_crash off: after a SIGKILL the server
# is down until started again, and starting it runs crash recovery.
sub call_killed_at
{
	my ($at, $what) = @_;
	my ($rc, $out, $err);
	my $label = $what;
	{
		local $ENV{PGOPTIONS} = "-c tools_test.$what=$at";
		($rc, $out, $err) = $node->psql('postgres', 'CALL tools.start(1)');
	}
	isnt($rc, 0, "$label: the call was killed");
	$node->stop('immediate', fail_ok => 1);
	$node->start;
}

sub indexes
{
	return $node->safe_psql('postgres', q{
	  SELECT string_agg(c.relname, ',' ORDER BY c.relname)
	    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	   WHERE i.indrelid = 'public.dr'::regclass});
}

sub deferred
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(index_name, ',' ORDER BY index_name) FROM tools.deferred_index");
}

# Killed in the copy's third batch: the target holds the committed batches
# (of the first two, those whose asynchronous commit reached disk), once;
# the indexes are dropped and their definitions kept, both committed
# durably by the job's first step.
call_killed_at(2500, 'copy');
is( $node->safe_psql('postgres', q{
	  SELECT j.rows = (SELECT count(*) FROM public.dr),
	         coalesce(j.lastseq, 0) IN (0, 1000, 2000),
	         (SELECT count(*) FROM (
	            (SELECT * FROM source.dr WHERE id <= coalesce(j.lastseq, 0)
	             EXCEPT ALL TABLE public.dr)
	            UNION ALL
	            (TABLE public.dr EXCEPT ALL
	             SELECT * FROM source.dr WHERE id <= coalesce(j.lastseq, 0))) d)
	    FROM tools.job j}),
	't|t|0', 'after the kill in the copy: the committed batches, once');
is(indexes(), 'dr_pkey', 'after the kill in the copy: the secondary indexes are dropped');
is(deferred(), 'dr_a,dr_b,dr_c', 'after the kill in the copy: their definitions are kept');

# Resumed, and killed again while building dr_b: dr_a is back, dr_b and dr_c
# are still deferred.  The rows are all copied.
call_killed_at(4321, 'build');
is( $node->safe_psql('postgres',
		'SELECT j.state, j.rows, (SELECT count(*) FROM public.dr) FROM tools.job j'),
	'completed|5000|5000', 'after the kill in the build: every row copied, once');
is(indexes(), 'dr_a,dr_pkey', 'after the kill in the build: the index built before it is back');
is(deferred(), 'dr_b,dr_c', 'after the kill in the build: the others are still deferred');

# The same CALL builds the rest.
$node->safe_psql('postgres', 'CALL tools.start(1)');
is(deferred(), '', 'after the resume: nothing is deferred');
is( $node->safe_psql('postgres', q{
	  SELECT count(*) FILTER (WHERE a.def IS DISTINCT FROM b.def), count(*)
	    FROM public.dr_before b
	    LEFT JOIN (SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def
	                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	                WHERE i.indrelid = 'public.dr'::regclass) a USING (relname)}),
	'0|4', 'after the resume: every index is back, as it was');
is( $node->safe_psql('postgres', q{
	  SELECT j.state, j.rows, (SELECT count(*) FROM (
	           (TABLE source.dr EXCEPT ALL TABLE public.dr)
	           UNION ALL (TABLE public.dr EXCEPT ALL TABLE source.dr)) d)
	    FROM tools.job j}),
	'completed|5000|0', 'after the resume: the target equals the source');
is( $node->safe_psql('postgres', q{
	  SET enable_seqscan = off; SET enable_bitmapscan = off;
	  SELECT count(*) FROM public.dr WHERE public.key_of(id) > 4990}),
	'10', 'the rebuilt expression index answers');

$node->stop;
done_testing();
