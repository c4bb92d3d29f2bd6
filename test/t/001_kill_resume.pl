# A job stopped at any point -- its backend terminated, killed with SIGKILL
# (the server restarts), or the server shut down in immediate mode -- resumes
# with the same CALL and ends with the target equal to the source: no row
# missing, none doubled, job.rows equal to the target's count.
#
# Twenty-two stops, each from inside the batch, by a trigger on the target that
# fires on a chosen source row, so the kill points are exact, not timed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('kill_resume');
$node->init;
$node->start;
my $datadir = $node->data_dir;

$node->safe_psql('postgres', qq{
  CREATE EXTENSION tools;
  CREATE SCHEMA source;
  CREATE TABLE source.t (id bigint PRIMARY KEY, v text);
  INSERT INTO source.t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
  -- No unique key on the target: a doubled row would stay and show.
  CREATE TABLE public.t (v text, id bigint);
  CREATE FUNCTION public.stop_here() RETURNS trigger LANGUAGE plpgsql AS \$\$
  BEGIN
    IF NEW.id::text = current_setting('tools_test.stop_at', true) THEN
      CASE current_setting('tools_test.how')
        WHEN 'terminate' THEN
          PERFORM pg_terminate_backend(pg_backend_pid());
          PERFORM pg_sleep(10);
        WHEN 'sigkill' THEN
          EXECUTE 'COPY (SELECT 1) TO PROGRAM ''kill -9 \$PPID''';
        WHEN 'immediate' THEN
          EXECUTE 'COPY (SELECT 1) TO PROGRAM ''kill -QUIT \$(head -n 1 $datadir/postmaster.pid)''';
          PERFORM pg_sleep(10);
      END CASE;
    END IF;
    RETURN NEW;
  END \$\$;
  CREATE TRIGGER stop_here AFTER INSERT ON public.t
    FOR EACH ROW EXECUTE FUNCTION public.stop_here();
  INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('source.t', 'public.t', 'id', 300);
  SELECT tools.run();
});

# After any stop: the target holds exactly the source rows up to lastseq,
# once each, and job.rows counts them.
sub check_consistent
{
	my ($label) = @_;
	my $r = $node->safe_psql('postgres', q{
	  SELECT (SELECT count(*) FROM public.t) = j.rows,
	         (SELECT count(*) FROM (
	            (SELECT id, v FROM source.t WHERE id <= coalesce(j.lastseq, 0)
	             EXCEPT ALL SELECT id, v FROM public.t)
	            UNION ALL
	            (SELECT id, v FROM public.t
	             EXCEPT ALL SELECT id, v FROM source.t WHERE id <= coalesce(j.lastseq, 0))) d) = 0
	    FROM tools.job j WHERE j.job_id = 1});
	is($r, "t|t", "$label: target holds the committed batches exactly once");
}

sub wait_for_server
{
	$node->poll_query_until('postgres', 'SELECT true')
	  or die "server did not come back";
}

# Kill points: first row, last row of a batch, first row of the next, rows in
# the middle, the very last row -- under each way of stopping.
my @stops = (
	[ 1,    'terminate' ], [ 2,    'sigkill' ],   [ 299,  'immediate' ],
	[ 300,  'sigkill' ],   [ 301,  'immediate' ], [ 302,  'terminate' ],
	[ 599,  'terminate' ], [ 600,  'immediate' ], [ 900,  'terminate' ],
	[ 1234, 'sigkill' ],   [ 1501, 'terminate' ], [ 1801, 'immediate' ],
	[ 2100, 'sigkill' ],   [ 2400, 'sigkill' ],   [ 2777, 'immediate' ],
	[ 3333, 'terminate' ], [ 3600, 'sigkill' ],   [ 4200, 'immediate' ],
	[ 4501, 'terminate' ], [ 4800, 'sigkill' ],   [ 4999, 'immediate' ],
	[ 5000, 'terminate' ]);

foreach my $stop (@stops)
{
	my ($at, $how) = @$stop;
	local $ENV{PGOPTIONS} = "-c tools_test.stop_at=$at -c tools_test.how=$how";
	my ($rc, $out, $err) = $node->psql('postgres', 'CALL tools.start(1)');
	isnt($rc, 0, "job stopped at row $at by $how");

	# Test clusters run with restart_after_crash off: after a SIGKILL, as
	# after an immediate shutdown, the server is down until started again,
	# and starting it runs crash recovery.
	if ($how ne 'terminate')
	{
		$node->stop('immediate', fail_ok => 1);
		$node->start;
	}
	wait_for_server();
	check_consistent("after $how at row $at");
}

$node->safe_psql('postgres', 'CALL tools.start(1)');
check_consistent('after the final resume');
is( $node->safe_psql('postgres', q{
	  SELECT j.state, j.lastseq, j.rows, (SELECT count(*) FROM public.t),
	         (SELECT count(DISTINCT id) FROM public.t)
	    FROM tools.job j WHERE j.job_id = 1}),
	'completed|5000|5000|5000|5000',
	'the target equals the source after the resumes');

$node->stop;
done_testing();
