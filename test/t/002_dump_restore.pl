# pg_dump keeps tools.config.  A database with the extension, dumped and
# restored into a new database, has the same configuration rows (relations
# by name, every column), its identity goes on after them, and a run planned
# there copies the rows.  Runs and jobs are not dumped: they belong to the
# database they ran in.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump_restore');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE origin');
$node->safe_psql('origin', q{
  CREATE EXTENSION tools;
  CREATE SCHEMA source;
  CREATE TABLE source.a (id int PRIMARY KEY, v text);
  INSERT INTO source.a SELECT g, 'a' || g FROM generate_series(1, 500) g;
  CREATE TABLE public."Target A" (v text, id int);
  INSERT INTO tools.config (source, target, pkey, priority, condition, batchsize, trunc) VALUES
    ('source.a', 'public."Target A"', 'id', 1, 'id % 2 = 0', 100, true),
    ('source.a', 'public."Target A"', 'id', 1.5, 'id % 2 = 1', NULL, false);
  SELECT tools.run();
  CALL tools.start(1);
  CALL tools.start(2);
});

my $config = q{SELECT config_id, source::text, target::text, pkey, priority,
                      condition, batchsize, trunc
                 FROM tools.config ORDER BY config_id};
my $before = $node->safe_psql('origin', $config);
like($before, qr/^1\|source\.a\|"Target A"\|id\|1\|id % 2 = 0\|100\|t$/m,
	'the configuration before the dump');

my $dump = $node->basedir . '/origin.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('origin') ],
	'pg_dump of a database with the extension');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('restored'), $dump ],
	'pg_restore into a new database');

is($node->safe_psql('restored', $config), $before, 'tools.config rows restored');
is( $node->safe_psql('restored',
		'SELECT (SELECT count(*) FROM tools.run), (SELECT count(*) FROM tools.job)'),
	'0|0', 'runs and jobs are not dumped');
is( $node->safe_psql('restored', q{
	  INSERT INTO tools.config (source, target, pkey)
	  VALUES ('source.a', 'public."Target A"', 'id') RETURNING config_id}),
	'3', 'config_id goes on after the restored rows');
$node->safe_psql('restored', 'DELETE FROM tools.config WHERE config_id = 3');

$node->safe_psql('restored', q{
  SELECT tools.run();
  CALL tools.start(1);
  CALL tools.start(2);
});
is( $node->safe_psql('restored', q{
	  SELECT count(*), count(DISTINCT id), min(id), max(id) FROM public."Target A"}),
	'500|500|1|500', 'a run in the restored database copies every row once');

$node->stop;
done_testing();
