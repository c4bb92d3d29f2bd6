# MariaDB through mysql_fdw: a throwaway mariadbd (an unprivileged user,
# 127.0.0.1, a free port, a temporary data directory) holds tables with
# MySQL types -- INT UNSIGNED up to its maximum, DATETIME, DECIMAL, VARCHAR
# with utf8mb4 text, TINYINT(1), NULLs -- migrated into PostgreSQL types.
# Rows and values equal after the run.  mysql_fdw 2.8 writes ORDER BY as
# "id IS NULL, id", which MariaDB sorts instead of reading the key's index:
# a batch bound by ORDER BY ... LIMIT would read the rest of the key range.
# A job with an integer key reads in windows of key values instead, and
# MariaDB's own counters show each row read about twice in all (once
# counted, once copied), whatever the number of batches; the sparse keys
# (3000 rows, then two near 2^32) take a few empty windows.  A text key
# still needs ORDER BY: the job warns once, saying what to do.  Parts of
# the source, which has no statistics here, are cut from its key's range.
# After rows change in MariaDB, tools.repair() makes the target equal again.
#
# Skipped, saying why, where mariadbd or mysql_fdw is not installed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
my ($mariadbd) = grep { -x $_ } ('/usr/sbin/mariadbd', '/usr/sbin/mysqld');
plan skip_all => 'mariadbd is not installed (Debian package mariadb-server)'
  unless defined $mariadbd;
plan skip_all => 'mysql_fdw is not installed (Debian package postgresql-15-mysql-fdw)'
  unless -f "$pkglibdir/mysql_fdw.so";

my $dir = PostgreSQL::Test::Utils::tempdir;
my $sock = "$dir/mariadb.sock";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $rows = 3000;

run_log([ 'mariadb-install-db', '--no-defaults', "--datadir=$dir/data",
	'--auth-root-authentication-method=normal', '--skip-test-db' ])
  or BAIL_OUT('mariadb-install-db failed');
my $server = IPC::Run::start(
	[ $mariadbd, '--no-defaults', "--datadir=$dir/data", "--socket=$sock",
	  "--port=$port", '--bind-address=127.0.0.1', "--pid-file=$dir/mariadb.pid",
	  "--log-error=$dir/mariadb.err" ]);
END { $server->kill_kill if $server; }

# Run SQL in MariaDB as root over its socket; returns the output.
sub maria
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'mariadb', '--no-defaults', '--default-character-set=utf8mb4',
		"--socket=$sock", '-uroot', '-N', '-B', '-e', $sql ], '>', \$out, '2>', \$err)
	  or die "mariadb: $err";
	chomp $out;
	return $out;
}

my $up = 0;
foreach (1 .. 60)
{
	last if $up = eval { maria('SELECT 1'); 1 };
	sleep 1;
}
BAIL_OUT('mariadbd did not start') unless $up;

maria(qq{
  CREATE USER tools\@'127.0.0.1' IDENTIFIED BY 'secret';
  GRANT ALL ON legacy.* TO tools\@'127.0.0.1';
  CREATE DATABASE legacy CHARACTER SET utf8mb4;
  CREATE TABLE legacy.customers (
    id INT UNSIGNED NOT NULL PRIMARY KEY,
    name VARCHAR(100) CHARACTER SET utf8mb4,
    active TINYINT(1),
    created DATETIME,
    balance DECIMAL(12,2)
  );
  INSERT INTO legacy.customers
  SELECT seq, CONCAT('customer ', seq, IF(seq % 7 = 0, ' Zoë Ørsted 😀', '')),
         IF(seq % 5 = 0, NULL, seq % 2), '2024-02-29 13:45:01' + INTERVAL seq MINUTE,
         IF(seq % 11 = 0, NULL, seq * 1.25 - 1000)
    FROM legacy.seq_1_to_$rows;
  INSERT INTO legacy.customers VALUES
    (4294967295, 'the largest INT UNSIGNED', 1, '1999-12-31 23:59:59', -0.01),
    (4294967294, NULL, NULL, NULL, NULL);
});

my $node = PostgreSQL::Test::Cluster->new('mariadb');
$node->init;
$node->start;
$node->safe_psql('postgres', qq{
  CREATE EXTENSION tools;
  CREATE EXTENSION mysql_fdw;
  CREATE SERVER maria FOREIGN DATA WRAPPER mysql_fdw
    OPTIONS (host '127.0.0.1', port '$port', character_set 'utf8mb4');
  CREATE USER MAPPING FOR CURRENT_USER SERVER maria OPTIONS (username 'tools', password 'secret');
  CREATE SCHEMA legacy;
  IMPORT FOREIGN SCHEMA legacy FROM SERVER maria INTO legacy;
});
is( $node->safe_psql('postgres', q{
	  SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
	    FROM pg_attribute WHERE attrelid = 'legacy.customers'::regclass AND attnum > 0}),
	'id integer, name character varying(100), active smallint, created timestamp without time zone, balance numeric',
	'mysql_fdw imports INT UNSIGNED as integer and TINYINT(1) as smallint');

# INT UNSIGNED needs bigint, TINYINT(1) is a boolean: the foreign table says
# so, and mysql_fdw converts the values.
$node->safe_psql('postgres', q{
  ALTER FOREIGN TABLE legacy.customers ALTER COLUMN id TYPE bigint,
    ALTER COLUMN active TYPE boolean;
  CREATE TABLE public.customers (
    balance numeric(12,2),
    created timestamp,
    active boolean,
    name text,
    id bigint PRIMARY KEY
  );
  INSERT INTO tools.config (source, target, pkey, batchsize, trunc)
  VALUES ('legacy.customers', 'public.customers', 'id', 500, true);
  SELECT tools.run();
});

# Rows MariaDB read from its tables' indexes (a batch bound by ORDER BY ...
# LIMIT reads the rest of the range there before sorting it).  The reads
# of temporary tables (HANDLER_READ_RND*: the result sets of mysql_fdw's
# cursors, and this statement's own) are left out.
my $reads = q{SELECT SUM(VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS
               WHERE VARIABLE_NAME IN ('HANDLER_READ_FIRST', 'HANDLER_READ_KEY', 'HANDLER_READ_NEXT',
                                       'HANDLER_READ_PREV', 'HANDLER_READ_LAST')};
my $before = maria($reads);
my ($rc, $out, $err) = $node->psql('postgres', 'SET client_min_messages = debug1; CALL tools.start(1)');
is($rc, 0, 'the job runs');
like($err, qr/tools job 1 reads legacy\.customers in windows of key values, without ORDER BY/,
	'the job reads MariaDB in windows of key values');
unlike($err, qr/WARNING/, 'without a warning');
my $read = maria($reads) - $before;
my $copied = $rows + 2;
cmp_ok($read, '<=', 2 * $copied + 100,
	"MariaDB read $read rows from indexes for $copied rows copied in batches of 500: about twice each, not the rest of the table per batch");

like( $node->safe_psql('postgres', q{
	  EXPLAIN VERBOSE SELECT id FROM legacy.customers WHERE id > 100 ORDER BY id OFFSET 499 LIMIT 1}),
	qr/Remote query: SELECT `id` FROM `legacy`.`customers` WHERE \(\(`id` > 100\)\) ORDER BY .*LIMIT 1 OFFSET 499/,
	'a batch bound reaches MariaDB with the key range, ORDER BY and LIMIT');
like( $node->safe_psql('postgres', q{
	  EXPLAIN VERBOSE SELECT balance, created, active, name, id FROM legacy.customers
	   WHERE id > 100 AND id <= 600}),
	qr/WHERE \(\(`id` > 100\)\) AND \(\(`id` <= 600\)\)/,
	'a batch copy reaches MariaDB with its key range');

is( $node->safe_psql('postgres', q{
	  SELECT j.state, j.rows, (SELECT count(*) FROM public.customers)
	    FROM tools.job j WHERE j.job_id = 1}),
	"completed|$copied|$copied", 'every row copied once');
is( $node->safe_psql('postgres', q{
	  SELECT count(*) FROM (
	    (SELECT id, name, active, created, balance FROM legacy.customers
	     EXCEPT ALL SELECT id, name, active, created, balance FROM public.customers)
	    UNION ALL
	    (SELECT id, name, active, created, balance FROM public.customers
	     EXCEPT ALL SELECT id, name, active, created, balance FROM legacy.customers)) d}),
	'0', 'the target equals the source, value for value');
is( $node->safe_psql('postgres', q{
	  SELECT id, name, active, created, balance FROM public.customers
	   WHERE id IN (7, 10, 11, 4294967295, 4294967294) ORDER BY id}),
	join("\n",
		'7|customer 7 Zoë Ørsted 😀|t|2024-02-29 13:52:01|-991.25',
		'10|customer 10||2024-02-29 13:55:01|-987.50',
		'11|customer 11|t|2024-02-29 13:56:01|',
		'4294967294||||',
		'4294967295|the largest INT UNSIGNED|t|1999-12-31 23:59:59|-0.01'),
	'utf8mb4 text, booleans, DATETIME, DECIMAL, NULLs and the largest INT UNSIGNED');

# Two parts, cut from the key's range without statistics.
$node->safe_psql('postgres', q{
  CREATE TABLE public.customers_parts (LIKE public.customers);
  INSERT INTO tools.config (source, target, pkey, batchsize, trunc, parts)
  VALUES ('legacy.customers', 'public.customers_parts', 'id', 500, true, 2);
  SELECT tools.run('{public.customers_parts}');
});
my $run2 = $node->safe_psql('postgres', 'SELECT max(run_id) FROM tools.run');
is($node->safe_psql('postgres', "SELECT string_agg(coalesce(lower, '-') || '..' || coalesce(upper, '-'), ' ' ORDER BY job_id) FROM tools.job WHERE run_id = $run2"),
	'-..2147483649 2147483649..-', 'the key range 1 to 4294967295 is cut in two equal widths');
$node->safe_psql('postgres', "SELECT format('CALL tools.start(%s)', job_id) FROM tools.job WHERE run_id = $run2 \\gexec");
is( $node->safe_psql('postgres', qq{
	  SELECT string_agg(format('%s %s', state, rows), ', ' ORDER BY job_id) FROM tools.job WHERE run_id = $run2}),
	"completed $rows, completed 2", 'both parts complete');
is( $node->safe_psql('postgres', q{
	  SELECT count(*) FROM (
	    (SELECT * FROM public.customers EXCEPT ALL SELECT * FROM public.customers_parts)
	    UNION ALL (SELECT * FROM public.customers_parts EXCEPT ALL SELECT * FROM public.customers)) d}),
	'0', 'the parts copy every row once');

# A text key: ORDER BY is needed, and the job warns that MariaDB sorts.
maria(q{
  CREATE TABLE legacy.codes (code CHAR(5) NOT NULL PRIMARY KEY, n INT);
  INSERT INTO legacy.codes SELECT CONCAT('c', LPAD(seq, 4, '0')), seq FROM legacy.seq_1_to_300;
});
$node->safe_psql('postgres', q{
  IMPORT FOREIGN SCHEMA legacy LIMIT TO (codes) FROM SERVER maria INTO legacy;
  CREATE TABLE public.codes (code text PRIMARY KEY, n int);
  INSERT INTO tools.config (source, target, pkey, batchsize) VALUES ('legacy.codes', 'public.codes', 'code', 100);
  SELECT tools.run('{public.codes}');
});
my $job3 = $node->safe_psql('postgres', 'SELECT max(job_id) FROM tools.job');
($rc, $out, $err) = $node->psql('postgres', "CALL tools.start($job3)");
like($err, qr/WARNING:  each batch of job $job3 sorts all the remaining rows of legacy\.codes on the remote server\nDETAIL:  mysql_fdw sends ORDER BY on the key as "key IS NULL, key"/,
	'with a text key, the job warns that MariaDB sorts the rest of the table for each batch');
is(scalar(() = $err =~ /WARNING/g), 1, 'once');
is($node->safe_psql('postgres', q{SELECT count(*), count(DISTINCT code), sum(n) FROM public.codes}),
	'300|300|45150', 'and copies every row once');

# The cutover: rows changed, deleted and added in MariaDB after the copy.
# tools.repair() reads MariaDB's rows in chunks in the key's order, each
# bounded by a window of key values so that MariaDB sorts only the rows of
# one window, hashes them here, and leaves the target equal to the source.
# In chunks of 100 rows, a chunk bound by ORDER BY ... LIMIT alone would
# make MariaDB read the rest of the table each time: about 15 times the
# rows in all.
maria(q{
  UPDATE legacy.customers SET name = 'changed', balance = 1 WHERE id IN (5, 1500, 2999);
  DELETE FROM legacy.customers WHERE id BETWEEN 2000 AND 2010;
  INSERT INTO legacy.customers VALUES (0, 'below', 1, '2020-01-01 00:00:00', 0),
    (3500, 'above', 0, NULL, NULL);
});
my $differing = q{
  SELECT count(*) FROM (
    (SELECT id, name, active, created, balance FROM legacy.customers
     EXCEPT ALL SELECT id, name, active, created, balance FROM public.customers)
    UNION ALL
    (SELECT id, name, active, created, balance FROM public.customers
     EXCEPT ALL SELECT id, name, active, created, balance FROM legacy.customers)) d};
is($node->safe_psql('postgres', $differing), '19', 'MariaDB changed since the copy');
$before = maria($reads);
{
	local $ENV{PGOPTIONS} = '-c tools.repair_chunk=100 -c client_min_messages=debug1';
	($rc, $out, $err) = $node->psql('postgres', 'CALL tools.repair(1)');
}
$read = maria($reads) - $before;
is($rc, 0, 'the repair runs');
like($err, qr/tools job 1 compares every row of its range, in windows of key values/,
	'it reads MariaDB in windows of key values');
like($err,
	qr/tools job 1: public\.customers differed from legacy\.customers in \d+ key ranges? of up to 100 rows and now equals it; rows: 2 missing, 11 extra, 3 changed/,
	'it finds the rows added, deleted and changed');
cmp_ok($read, '<=', 4 * $copied,
	"MariaDB read $read rows from indexes for the repair of $copied rows in chunks of 100: a few times each, not the rest of the table per chunk");
is($node->safe_psql('postgres', $differing), '0', 'the target equals MariaDB again');
is($node->safe_psql('postgres', 'SELECT bool_and(ok) FROM tools.verify(1)'), 't',
	'verify agrees');

$node->stop;
$server->kill_kill;
undef $server;
done_testing();
