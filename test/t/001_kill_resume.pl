# A job stopped at any point -- its backend terminated, killed with SIGKILL
# (the server restarts), or the server shut down in immediate mode -- resumes
# with the same CALL and ends with the target equal to the source: no row
# missing, none doubled, job.rows equal to the target's count.
#
# Two jobs of the same source: job 1 writes with INSERT (its target has a
# trigger), job 2 with the bulk path (table_multi_insert).  Each is stopped
# from inside its batches at chosen source rows, so the kill points are
# exact, not timed: job 1 by a trigger on its target, job 2 by a function in
# its condition, on the second time that function sees the row (the first is
# the batch's bound statement, the second its copy).  Job 2's batches of 1500
# rows are written in groups of at most 1000: some stops come after a group
# was written, and that group must go with its batch.
#
# Jobs 3 and 4 are the two parts of a copy keyed by a text column (an md5),
# each over its own key range: each part is stopped at chosen ranks of its
# own rows and resumes on its own.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('kill_resume');
$node->init;
$node->start;
my $datadir = $node->data_dir;
# The bulk path needs PostgreSQL 14; before, every job writes with INSERT.
my $bulk = $node->safe_psql('postgres', 'SHOW server_version_num') >= 140000;

$node->safe_psql('postgres', qq{
  CREATE EXTENSION tools;
  CREATE SCHEMA source;
  CREATE TABLE source.t (id bigint PRIMARY KEY, v text);
  INSERT INTO source.t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
  -- No unique key on the target: a doubled row would stay and show.
  CREATE TABLE public.t (v text, id bigint);
  CREATE TABLE public.b (v text, id bigint);
  CREATE TABLE public.p (v text, id bigint);
  CREATE FUNCTION public.stop_now() RETURNS void LANGUAGE plpgsql AS \$\$
  BEGIN
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
  END \$\$;
  CREATE FUNCTION public.stop_here() RETURNS trigger LANGUAGE plpgsql AS \$\$
  BEGIN
    IF NEW.id::text = current_setting('tools_test.stop_at', true) THEN
      PERFORM public.stop_now();
    END IF;
    RETURN NEW;
  END \$\$;
  CREATE TRIGGER stop_here AFTER INSERT ON public.t
    FOR EACH ROW EXECUTE FUNCTION public.stop_here();
  CREATE FUNCTION public.pass(id bigint) RETURNS boolean LANGUAGE plpgsql AS \$\$
  BEGIN
    IF id::text = current_setting('tools_test.stop_at', true) THEN
      IF current_setting('tools_test.seen', true) = 'yes' THEN
        PERFORM public.stop_now();
      END IF;
      PERFORM set_config('tools_test.seen', 'yes', false);
    END IF;
    RETURN true;
  END \$\$;
  INSERT INTO tools.config (source, target, pkey, batchsize, condition) VALUES
    ('source.t', 'public.t', 'id', 300, NULL),
    ('source.t', 'public.b', 'id', 1500, 'public.pass(id)');
  INSERT INTO tools.config (source, target, pkey, batchsize, condition, parts) VALUES
    ('source.t', 'public.p', 'v', 700, 'public.pass(id)', 2);
  SELECT tools.run();
});

# A job's key, and its rows in a relation: those of its part of the key
# range (all rows for a job of one part), those up to its position.
my %key = (1 => [ 'id', 'bigint' ], 2 => [ 'id', 'bigint' ],
	3 => [ 'v', 'text' ], 4 => [ 'v', 'text' ]);

sub in_part
{
	my ($k, $type) = @{ $key{ $_[0] } };
	return "(j.lower IS NULL OR $k >= j.lower::$type)"
	  . " AND (j.upper IS NULL OR $k < j.upper::$type)";
}

sub copied
{
	my ($k, $type) = @{ $key{ $_[0] } };
	return in_part($_[0]) . " AND $k <= j.lastkey[1]::$type";
}

# After any stop: the job's target holds exactly the source rows of its part
# up to its position, once each, and job.rows counts them.
sub check_consistent
{
	my ($job, $target, $label) = @_;
	my ($part, $done) = (in_part($job), copied($job));
	my $r = $node->safe_psql('postgres', qq{
	  SELECT (SELECT count(*) FROM $target WHERE $part) = j.rows,
	         (SELECT count(*) FROM (
	            (SELECT id, v FROM source.t WHERE $done
	             EXCEPT ALL SELECT id, v FROM $target WHERE $part)
	            UNION ALL
	            (SELECT id, v FROM $target WHERE $part
	             EXCEPT ALL SELECT id, v FROM source.t WHERE $done)) d) = 0
	    FROM tools.job j WHERE j.job_id = $job});
	is($r, "t|t", "job $job, $label: target holds the committed batches exactly once");
}

sub wait_for_server
{
	$node->poll_query_until('postgres', 'SELECT true')
	  or die "server did not come back";
}

# Kill points: first row, last row of a batch, first row of the next, rows in
# the middle, the very last row -- under each way of stopping.  Job 2 adds
# rows around its groups of 1000.
my %stops = (
	1 => [
		[ 1,    'terminate' ], [ 2,    'sigkill' ],   [ 299,  'immediate' ],
		[ 300,  'sigkill' ],   [ 301,  'immediate' ], [ 302,  'terminate' ],
		[ 599,  'terminate' ], [ 600,  'immediate' ], [ 900,  'terminate' ],
		[ 1234, 'sigkill' ],   [ 1501, 'terminate' ], [ 1801, 'immediate' ],
		[ 2100, 'sigkill' ],   [ 2400, 'sigkill' ],   [ 2777, 'immediate' ],
		[ 3333, 'terminate' ], [ 3600, 'sigkill' ],   [ 4200, 'immediate' ],
		[ 4501, 'terminate' ], [ 4800, 'sigkill' ],   [ 4999, 'immediate' ],
		[ 5000, 'terminate' ]
	],
	2 => [
		[ 1,    'terminate' ], [ 999,  'sigkill' ],   [ 1001, 'immediate' ],
		[ 1499, 'terminate' ], [ 1500, 'sigkill' ],   [ 1501, 'immediate' ],
		[ 2600, 'terminate' ], [ 2999, 'sigkill' ],   [ 3001, 'immediate' ],
		[ 4499, 'terminate' ], [ 4501, 'sigkill' ],   [ 5000, 'immediate' ]
	]);
my %targets = (1 => 'public.t', 2 => 'public.b', 3 => 'public.p', 4 => 'public.p');

# The parts are stopped at ranks of their own rows in key order (batches of
# 700, each written in one group): the ids at those ranks.
foreach my $job (3, 4)
{
	my $part = in_part($job);
	my @ids = split /\n/, $node->safe_psql('postgres', qq{
	  SELECT id FROM source.t, tools.job j WHERE j.job_id = $job AND $part ORDER BY v});
	my @ways = ('terminate', 'sigkill', 'immediate');
	my $i = 0;
	$stops{$job} = [ map { [ $ids[ $_ - 1 ], $ways[ $i++ % 3 ] ] }
		  (1, 700, 701, 1000, 1401, 2000, scalar @ids) ];
}

foreach my $job (1, 2, 3, 4)
{
	my $target = $targets{$job};

	foreach my $stop (@{ $stops{$job} })
	{
		my ($at, $how) = @$stop;
		my ($rc, $out, $err);
		{
			local $ENV{PGOPTIONS} =
			  "-c tools_test.stop_at=$at -c tools_test.how=$how -c client_min_messages=debug1";
			($rc, $out, $err) = $node->psql('postgres', "CALL tools.start($job)");
		}
		isnt($rc, 0, "job $job stopped at row $at by $how");
		like($err,
			!$bulk    ? qr/with INSERT: PostgreSQL 14 or later is needed/
			: $job == 1 ? qr/with INSERT: the target has insert triggers/
			:             qr/by bulk insertion/,
			"job $job takes its path");

		# Test clusters run with restart_after_crash off: after a SIGKILL, as
		# after an immediate shutdown, the server is down until started again,
		# and starting it runs crash recovery.
		if ($how ne 'terminate')
		{
			$node->stop('immediate', fail_ok => 1);
			$node->start;
		}
		wait_for_server();
		check_consistent($job, $target, "after $how at row $at");
		# No process runs the job now (a terminated one may still be
		# exiting): the views show it failed, whatever the job recorded.
		ok( $node->poll_query_until('postgres', qq{
			  SELECT p.state = 'failed' AND r.state = 'failed'
			    FROM tools.progress p JOIN tools.report r USING (run_id, target)
			   WHERE p.job_id = $job}),
			"job $job, after $how at row $at: progress and report show it failed");
	}

	$node->safe_psql('postgres', "CALL tools.start($job)");
	check_consistent($job, $target, 'after the final resume');
	next if $job > 2;
	is( $node->safe_psql('postgres', qq{
		  SELECT j.state, j.lastseq, j.rows, (SELECT count(*) FROM $target),
		         (SELECT count(DISTINCT id) FROM $target)
		    FROM tools.job j WHERE j.job_id = $job}),
		'completed|5000|5000|5000|5000',
		"job $job: the target equals the source after the resumes");
}

is( $node->safe_psql('postgres', qq{
	  SELECT string_agg(j.state::text, ','), sum(j.rows),
	         (SELECT count(*) FROM public.p), (SELECT count(DISTINCT id) FROM public.p),
	         (SELECT count(*) FROM (TABLE source.t EXCEPT SELECT id, v FROM public.p) d)
	    FROM tools.job j WHERE j.job_id IN (3, 4)}),
	'completed,completed|5000|5000|5000|0',
	"parts 3 and 4: the target equals the source after the resumes");

$node->stop;
done_testing();
