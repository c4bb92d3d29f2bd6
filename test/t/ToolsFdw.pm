# ToolsFdw: a postgres_fdw source for TAP tests, the database src of the
# test's own cluster seen from another of its databases.
package ToolsFdw;

use strict;
use warnings;

# The SQL that creates, in the current database of $node's cluster,
# extension postgres_fdw, server src for database src (with the server
# options in $options, a string such as "use_remote_estimate 'true'"), a
# user mapping for the current role, and schema src holding the foreign
# tables of src's schema public (those in $limit, such as "items, nums",
# when given).
sub src_sql
{
	my ($node, %args) = @_;
	my ($host, $port) = ($node->host, $node->port);
	my $options = defined $args{options} ? ", $args{options}" : '';
	my $limit = defined $args{limit} ? "LIMIT TO ($args{limit}) " : '';
	return qq{
  CREATE EXTENSION postgres_fdw;
  CREATE SERVER src FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '$host', port '$port', dbname 'src'$options);
  CREATE USER MAPPING FOR CURRENT_USER SERVER src;
  CREATE SCHEMA src;
  IMPORT FOREIGN SCHEMA public ${limit}FROM SERVER src INTO src;
};
}

1;
