# ToolsGate: a gate for TAP tests.  Closed, a session of its own holds
# advisory lock 42, on which a test's public.gate() function waits; opened,
# that session is terminated and the waiters go on.
package ToolsGate;

use strict;
use warnings;
use IPC::Run;

# A gate on the database $db of the cluster $node, open.
sub new
{
	my ($class, $node, $db) = @_;
	return bless { node => $node, db => $db }, $class;
}

# Create public.gate(id int), for a job's condition: it waits at key 3001
# for as long as the gate is closed, and lets every other key pass.
sub install_function
{
	my ($self) = @_;
	$self->{node}->safe_psql($self->{db}, q{
	  CREATE OR REPLACE FUNCTION public.gate(id int) RETURNS boolean LANGUAGE plpgsql AS $$
	  BEGIN
	    IF id = 3001 THEN
	      PERFORM pg_advisory_lock_shared(42);
	      PERFORM pg_advisory_unlock_shared(42);
	    END IF;
	    RETURN true;
	  END $$;
	});
	return;
}

# Take lock 42 in a session that keeps it until open(), and wait until the
# server shows it held.
sub close
{
	my ($self) = @_;
	my ($out, $err) = ('', '');
	$self->{run} = IPC::Run::start(
		[ 'psql', '-X', '-d', $self->{node}->connstr($self->{db}), '-c',
		  'SELECT pg_advisory_lock(42), pg_sleep(3600)' ],
		'>', \$out, '2>', \$err);
	$self->{node}->poll_query_until($self->{db}, q{
	  SELECT count(*) = 1 FROM pg_locks
	   WHERE locktype = 'advisory' AND objid = 42 AND granted AND mode = 'ExclusiveLock'})
	  or die 'the gate did not close';
	return;
}

# End the session that holds lock 42.
sub open
{
	my ($self) = @_;
	$self->{node}->safe_psql($self->{db}, q{
	  SELECT pg_terminate_backend(pid) FROM pg_locks
	   WHERE locktype = 'advisory' AND objid = 42 AND granted AND mode = 'ExclusiveLock'});
	$self->{run}->finish;
	return;
}

1;
