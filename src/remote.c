/*-------------------------------------------------------------------------
 *
 * remote.c
 *		Read the batches of a postgres_fdw source with COPY.
 *
 * Through postgres_fdw a batch's rows come by cursor, FETCH after FETCH:
 * the remote server waits while this one writes what it fetched, and this
 * one waits while the remote server reads the next rows.  A job whose
 * source is a postgres_fdw foreign table opens instead a connection of its
 * own to the same server, with the options of the server and of the user
 * mapping, and has each batch streamed by COPY (SELECT ...) TO STDOUT into
 * COPY FROM on the target: both servers work at once, as with a pipe from
 * one psql COPY to another, without the two client processes in between.
 *
 * The SELECT is postgres_fdw's own.  The batch's statement is planned with
 * its key range as constants, and what the remote server runs is the
 * remote SQL of the plan's foreign scan: the columns, the range and the
 * condition as postgres_fdw sends them, and nothing else.  A batch whose
 * plan is more than that one scan (a condition that postgres_fdw leaves to
 * this server, a plan cache forced to generic plans) reads through the
 * foreign table instead, and so do the job's later batches.
 *
 * Rows come in COPY's binary format when every column has the same built-in
 * type on both servers, as the remote server describes the statement, and
 * the session's client encoding is the database's; otherwise in text,
 * written by the remote server in the styles postgres_fdw sets there and
 * read here in the same styles.  COPY FROM's parser reads them into the bulk
 * path (bulk.c), or COPY FROM itself writes them into a target that the
 * bulk path does not take.
 *
 * While a batch streams, a second connection runs the next batch's bound
 * statement, planned and checked the same way, so that no batch waits for
 * its upper end.
 *
 * The connections live for one call of tools.start() and are closed when
 * the call ends, whether it completes or fails: an error can leave a COPY
 * half read, and a new call connects again.  Waits on the remote server
 * happen on the process latch, so that cancel and terminate requests are
 * served.
 *
 * As postgres_fdw, a role that is not a superuser connects only with the
 * password of its user mapping, and only to a server that asks for it,
 * unless a superuser set password_required 'false' on the mapping.  Such a
 * role's job without a password in its mapping reads through the foreign
 * table, where postgres_fdw applies its own rules.
 *
 * PostgreSQL 14 and later; earlier, batches read through the foreign table.
 *
 * IDENTIFICATION
 *		src/remote.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/transam.h"
#include "catalog/pg_class.h"
#include "commands/copy.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "executor/executor.h"
#include "foreign/foreign.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "nodes/makefuncs.h"
#include "nodes/plannodes.h"
#include "parser/parse_node.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/varlena.h"
#include "utils/timestamp.h"
#if PG_VERSION_NUM >= 140000
#include "utils/wait_event.h"
#endif

#include "tools.h"

/* tools.remote_copy: off, batches read postgres_fdw sources through it. */
bool		tools_remote_copy = true;

/* A connection to the source's server, and the command it runs. */
typedef struct RemoteConn
{
	PGconn	   *conn;
	const char *sql;
	const char *server_name;
} RemoteConn;

/* A job's ways to its postgres_fdw source's server, for one call. */
typedef struct ToolsRemote
{
	Oid			server;
	char	   *server_name;
	Oid			user;
	bool		password_required;
	bool		disabled;		/* a batch's plan did not fit: read through
								 * the foreign table from now on */
	bool		described;		/* binary is decided */
	bool		binary;
	RemoteConn	copy;			/* the batches' COPY */
	RemoteConn	bounds;			/* the next batch's upper end, meanwhile; a
								 * repair's second statement */
	bool		no_prefetch;	/* the bound's plan did not fit */
	bool		same_hash;		/* hash_record_extended() hashes alike there */

	/* the COPY being read: its current row, and how much of it was read */
	ErrorContextCallback *context;	/* the error context of the batch */
	char	   *row;
	int			row_len;
	int			row_pos;
	bool		done;
} ToolsRemote;

#if PG_VERSION_NUM >= 140000

/* The option of a user mapping that lets its role in without a password. */
static bool
mapping_password_required(UserMapping *mapping)
{
	ListCell   *lc;

	foreach(lc, mapping->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "password_required") == 0)
			return defGetBoolean(def);
	}
	return true;
}

static bool
mapping_has_password(UserMapping *mapping)
{
	ListCell   *lc;

	foreach(lc, mapping->options)
		if (strcmp(lfirst_node(DefElem, lc)->defname, "password") == 0)
			return true;
	return false;
}

/* Whether a role's user mapping of a server exists, its own or PUBLIC's. */
static bool
mapping_exists(Oid user, Oid server)
{
	return SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(user),
								 ObjectIdGetDatum(server)) ||
		SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							  ObjectIdGetDatum(server));
}

static void close_conn(RemoteConn *c);

/*
 * What keeps a job from opening a connection of its own to its source's
 * server, or NULL when nothing does: the source must be a postgres_fdw
 * foreign table, and the role may connect as postgres_fdw would let it.
 * Fills in r.
 */
static const char *
source_obstacle(const ToolsJob *job, ToolsRemote *r)
{
	ForeignServer *server;

	if (job->source_fdw == NULL ||
		strcmp(job->source_fdw, "postgres_fdw_handler") != 0)
		return "the source is not a postgres_fdw foreign table";
	server = GetForeignServer(GetForeignTable(job->source)->serverid);
	r->server = server->serverid;
	r->server_name = server->servername;
	r->user = GetUserId();
	if (!mapping_exists(r->user, r->server))
		return "no user mapping for the current role";
	if (!superuser_arg(r->user))
	{
		UserMapping *mapping = GetUserMapping(r->user, r->server);

		r->password_required = mapping_password_required(mapping);
		if (r->password_required && !mapping_has_password(mapping))
			return "the user mapping has no password";
	}
	return NULL;
}

/*
 * The job's ways to its postgres_fdw source's server for a call that asks
 * it questions, made in cxt at the first; NULL where the job cannot
 * connect of its own, which the first call says at DEBUG1 where the source
 * is a foreign table (what, a format for the source's name and why).
 */
static ToolsRemote *
own_remote(ToolsJob *job, const char *what, MemoryContext cxt)
{
	ToolsRemote *r = job->remote;

	if (r == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
		const char *why;

		r = palloc0(sizeof(ToolsRemote));
		job->remote = r;
		why = source_obstacle(job, r);
		MemoryContextSwitchTo(oldcxt);
		if (why != NULL)
		{
			if (job->source_foreign)
				elog(DEBUG1, "tools job %lld %s", (long long) job->job_id,
					 psprintf(what, job->source_name, why));
			r->disabled = true;
		}
	}
	return r->disabled ? NULL : r;
}

#endif							/* PG_VERSION_NUM >= 140000 */

/* Why a job's batches cannot read through COPY, or NULL when they can. */
static const char *
remote_obstacle(const ToolsJob *job, ToolsRemote *r)
{
#if PG_VERSION_NUM < 140000
	return "PostgreSQL 14 or later is needed";
#else
	Relation	rel;
	const char *why = NULL;

	if (!tools_remote_copy)
		return "tools.remote_copy is off";
	if (job->source_fdw == NULL ||
		strcmp(job->source_fdw, "postgres_fdw_handler") != 0)
		return "the source is not a postgres_fdw foreign table";
	if (!job->same_types)
		return "a copied column has another type in the source";
	why = source_obstacle(job, r);
	if (why != NULL)
		return why;

	/* COPY FROM writes as INSERT would, but for rules and row security. */
	rel = table_open(job->target, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		why = "the target is not a table";
	else
		why = tools_insert_obstacle(job);
	table_close(rel, AccessShareLock);
	return why;
#endif
}

/* Whether a host of a libpq connection string reaches this server. */
static bool
host_is_here(const char *host)
{
	char	   *dirs = pstrdup(Unix_socket_directories ? Unix_socket_directories : "");
	List	   *list = NIL;
	ListCell   *lc;

	if (strcmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0 ||
		strcmp(host, "::1") == 0)
		return true;
	if (host[0] != '/' || !SplitDirectoriesString(dirs, ',', &list))
		return false;
	foreach(lc, list)
		if (strcmp(host, (char *) lfirst(lc)) == 0)
			return true;
	return false;
}

/*
 * The remote table of a postgres_fdw foreign table, as postgres_fdw names
 * it: its schema_name and table_name options, the local names by default.
 */
static void
remote_table(const ForeignTable *table, const char **nspname,
			 const char **relname)
{
	ListCell   *lc;

	*nspname = get_namespace_name(get_rel_namespace(table->relid));
	*relname = get_rel_name(table->relid);
	foreach(lc, table->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "schema_name") == 0)
			*nspname = defGetString(def);
		else if (strcmp(def->defname, "table_name") == 0)
			*relname = defGetString(def);
	}
}

/*
 * Whether a postgres_fdw source's server is this server and this database,
 * by its options (host or hostaddr, port, dbname, as libpq defaults them),
 * and its remote table is the job's target: the job would read what it
 * writes, and a trunc run would wait for ever on its own lock, the remote
 * session holding the target open in a transaction the job waits for.
 * Needs no connection, so it holds whatever path the batches take.
 */
bool
tools_fdw_points_here(const ToolsJob *job)
{
	ForeignTable *table = GetForeignTable(job->source);
	ForeignServer *server = GetForeignServer(table->serverid);
	const char *host = NULL;
	const char *port = NULL;
	const char *dbname = NULL;
	const char *nspname;
	const char *relname;
	char	   *hosts;
	List	   *list = NIL;
	ListCell   *lc;
	bool		here = false;
	Oid			nsp;

	foreach(lc, server->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "host") == 0 || strcmp(def->defname, "hostaddr") == 0)
			host = defGetString(def);
		else if (strcmp(def->defname, "port") == 0)
			port = defGetString(def);
		else if (strcmp(def->defname, "dbname") == 0)
			dbname = defGetString(def);
	}
	remote_table(table, &nspname, &relname);
	if (atoi(port ? port : DEF_PGPORT_STR) != PostPortNumber ||
		strcmp(dbname ? dbname : GetUserNameFromId(GetUserId(), false),
			   get_database_name(MyDatabaseId)) != 0)
		return false;
	hosts = pstrdup(host && host[0] ? host : DEFAULT_PGSOCKET_DIR);
	if (!SplitGUCList(hosts, ',', &list))
		return false;
	foreach(lc, list)
		here = here || host_is_here((char *) lfirst(lc));
	nsp = get_namespace_oid(nspname, true);
	return here && OidIsValid(nsp) && get_relname_relid(relname, nsp) == job->target;
}

/* Decide whether the job's batches read its source with COPY. */
void
tools_remote_describe(ToolsJob *job)
{
	ToolsRemote *r = palloc0(sizeof(ToolsRemote));
	const char *why = remote_obstacle(job, r);

	job->remote = why == NULL ? r : NULL;
	if (why == NULL)
		elog(DEBUG1, "tools job %lld reads %s with COPY on server \"%s\" and writes into %s by %s",
			 (long long) job->job_id, job->source_name, r->server_name,
			 job->target_name, job->bulk ? "bulk insertion" : "COPY FROM");
	else if (job->source_foreign)
		elog(DEBUG1, "tools job %lld reads %s through the foreign table: %s",
			 (long long) job->job_id, job->source_name, why);
}

#if PG_VERSION_NUM >= 140000

/* The remote server's error, or the connection's, as this server's. */
static void
remote_error(RemoteConn *c, PGresult *res)
{
	const char *sqlstate = NULL;
	char	   *message = NULL;
	char	   *detail = NULL;
	char	   *hint = NULL;
	char	   *context;
	int			code = ERRCODE_CONNECTION_FAILURE;

	if (res != NULL)
	{
		sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) != NULL)
			message = pstrdup(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
		if (PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) != NULL)
			detail = pstrdup(PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
		if (PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) != NULL)
			hint = pstrdup(PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
		if (sqlstate != NULL && strlen(sqlstate) == 5)
			code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2],
								 sqlstate[3], sqlstate[4]);
		PQclear(res);
	}
	if (message == NULL)
		message = pchomp(PQerrorMessage(c->conn));
	if (c->sql != NULL)
		context = psprintf("remote SQL command on server \"%s\": %s",
						   c->server_name, c->sql);
	else
		context = psprintf("connection to server \"%s\"", c->server_name);

	ereport(ERROR,
			(errcode(code),
			 errmsg_internal("%s", message),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0,
			 errcontext("%s", context)));
}

/* Wait on the latch until the socket is ready for events, or an interrupt. */
static void
wait_socket(RemoteConn *c, int events)
{
	int			rc = WaitLatchOrSocket(MyLatch,
									   WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | events,
									   PQsocket(c->conn), -1L, PG_WAIT_EXTENSION);

	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The next result of the command sent, NULL after the last. */
static PGresult *
next_result(RemoteConn *c)
{
	while (PQisBusy(c->conn))
	{
		wait_socket(c, WL_SOCKET_READABLE);
		if (!PQconsumeInput(c->conn))
			remote_error(c, NULL);
	}
	return PQgetResult(c->conn);
}

/*
 * Read every result of the command sent; each must have the expected
 * status.  Returns the last, which the caller clears.
 */
static PGresult *
last_result(RemoteConn *c, ExecStatusType expected)
{
	PGresult   *last = NULL;
	PGresult   *res;

	while ((res = next_result(c)) != NULL)
	{
		if (PQresultStatus(res) != expected)
		{
			PQclear(last);
			remote_error(c, res);
		}
		PQclear(last);
		last = res;
	}
	return last;
}

/* Send a command, or fail with the connection's error. */
static void
send_command(RemoteConn *c, const char *sql)
{
	c->sql = sql;
	if (!PQsendQuery(c->conn, sql))
		remote_error(c, NULL);
}

/*
 * Whether a server option or a user mapping option is a connection option of
 * libpq, as postgres_fdw takes them: debug options and the two options set
 * here are not.
 */
static bool
is_connection_option(const PQconninfoOption *libpq, const char *name)
{
	const PQconninfoOption *opt;

	if (strcmp(name, "client_encoding") == 0 ||
		strcmp(name, "fallback_application_name") == 0)
		return false;
	for (opt = libpq; opt->keyword != NULL; opt++)
		if (strcmp(opt->keyword, name) == 0)
			return strchr(opt->dispchar, 'D') == NULL;
	return false;
}

/*
 * Connect to the source's server, with the connection options of the
 * server and of the user mapping, and set the session as postgres_fdw sets
 * its own: pg_catalog alone in search_path, for the remote SQL qualifies
 * every other name, and values written in fixed styles.
 */
static void
remote_connect(const ToolsJob *job, ToolsRemote *r, RemoteConn *c)
{
	ForeignServer *server = GetForeignServer(r->server);
	UserMapping *mapping = GetUserMapping(r->user, r->server);
	List	   *options = list_concat(list_copy(server->options),
									  mapping->options);
	PQconninfoOption *libpq = PQconndefaults();
	const char **keywords = palloc(sizeof(char *) * (list_length(options) + 3));
	const char **values = palloc(sizeof(char *) * (list_length(options) + 3));
	PostgresPollingStatusType status = PGRES_POLLING_WRITING;
	int			n = 0;
	ListCell   *lc;

	if (libpq == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (!is_connection_option(libpq, def->defname))
			continue;
		keywords[n] = def->defname;
		values[n++] = defGetString(def);
	}
	PQconninfoFree(libpq);
	keywords[n] = "fallback_application_name";
	values[n++] = psprintf("tools job %lld", (long long) job->job_id);
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	keywords[n] = values[n] = NULL;

	c->server_name = r->server_name;
	c->sql = NULL;

	/* The connection is a file descriptor that fd.c must count. */
	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to server \"%s\"", r->server_name),
				 errdetail("There are too many open files on this server.")));
	c->conn = PQconnectStartParams(keywords, values, false);
	if (c->conn == NULL)
	{
		ReleaseExternalFD();
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	while (PQstatus(c->conn) != CONNECTION_BAD &&
		   status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED)
	{
		wait_socket(c, status == PGRES_POLLING_READING ?
					WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE);
		status = PQconnectPoll(c->conn);
	}
	if (PQstatus(c->conn) != CONNECTION_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to server \"%s\"", r->server_name),
				 errdetail_internal("%s", pchomp(PQerrorMessage(c->conn))),
				 errhint("Jobs read postgres_fdw sources over connections of their own, made from the options of the server and of the user mapping; SET tools.remote_copy TO off reads them through postgres_fdw instead.")));
	if (!superuser_arg(r->user) && r->password_required &&
		!PQconnectionUsedPassword(c->conn))
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("password is required to connect to server \"%s\"",
						r->server_name),
				 errdetail("The server let the role in without asking for the password of the user mapping; only superusers may connect that way."),
				 errhint("Make the server ask for a password, or have a superuser set password_required 'false' on the user mapping.")));

	send_command(c, "SET search_path = pg_catalog; SET timezone = 'UTC';"
				 " SET datestyle = ISO; SET intervalstyle = postgres;"
				 " SET extra_float_digits = 3; SET jit = off");
	PQclear(last_result(c, PGRES_COMMAND_OK));
}

/*
 * Send a statement over one of the job's connections to its source's
 * server, made first where it is not open yet, without waiting: with
 * parameters (as text), or, with none, as a command.
 */
static void
remote_send(const ToolsJob *job, ToolsRemote *r, RemoteConn *c,
			const char *sql, int nparams, const char *const *params)
{
	if (c->conn == NULL)
		remote_connect(job, r, c);
	if (nparams == 0)
		send_command(c, sql);
	else
	{
		c->sql = sql;
		if (!PQsendQueryParams(c->conn, sql, nparams, NULL, params, NULL,
							   NULL, 0))
			remote_error(c, NULL);
	}
}

/*
 * The foreign scan that is the whole of a plan, everything evaluated on
 * the source's server, with the rights the plan would check if it ran
 * here checked; or NULL, and why not.
 */
static ForeignScan *
pushed_scan(ToolsRemote *r, PlannedStmt *stmt, const char **why)
{
	ForeignScan *scan;

	if (!IsA(stmt->planTree, ForeignScan))
	{
		*why = "its plan is more than one foreign scan";
		return NULL;
	}
	scan = (ForeignScan *) stmt->planTree;
	if (scan->scan.plan.qual != NIL)
		*why = "postgres_fdw leaves part of the condition to this server";
	else if (scan->fdw_exprs != NIL)
		*why = "its plan has parameters (plan_cache_mode is force_generic_plan)";
	else if (scan->fs_server != r->server || list_length(scan->fdw_private) < 2 ||
			 !IsA(linitial(scan->fdw_private), String))
		*why = "its foreign scan is not one that this version knows";
	else
	{
#if PG_VERSION_NUM >= 160000
		ExecCheckPermissions(stmt->rtable, stmt->permInfos, true);
#else
		ExecCheckRTPerms(stmt->rtable, true);
#endif
		return scan;
	}
	return NULL;
}

/*
 * The remote SQL of a statement, planned for these parameters (as
 * constants), and the numbers of the source's columns it returns; or NULL,
 * and why not.
 */
static char *
remote_sql(ToolsRemote *r, SPIPlanPtr plan, ParamListInfo params,
		   List **attnums, const char **why)
{
	CachedPlanSource *source = linitial(SPI_plan_get_plan_sources(plan));
	CachedPlan *cplan = GetCachedPlan(source, params, CurrentResourceOwner,
									  NULL);
	ForeignScan *scan = pushed_scan(r, linitial_node(PlannedStmt,
													 cplan->stmt_list),
									why);
	char	   *sql = NULL;

	if (scan != NULL)
	{
		sql = pstrdup(strVal(linitial(scan->fdw_private)));
		*attnums = list_copy((List *) lsecond(scan->fdw_private));
	}
	ReleaseCachedPlan(cplan, CurrentResourceOwner);
	return sql;
}

/*
 * The remote SQL of a statement of the job's copied columns, as
 * remote_sql(); NULL, and why not, also where it returns other columns.
 */
static char *
remote_columns_sql(const ToolsJob *job, ToolsRemote *r, SPIPlanPtr plan,
				   ParamListInfo params, List **attnums, const char **why)
{
	char	   *sql = remote_sql(r, plan, params, attnums, why);

	if (sql != NULL && list_length(*attnums) != job->ncolumns)
	{
		*why = "the remote SQL does not return the copied columns";
		return NULL;
	}
	return sql;
}

/*
 * Decide the format once per call, from the types of the remote statement's
 * columns: binary when each is the target column's built-in type.
 */
static void
decide_format(const ToolsJob *job, ToolsRemote *r, const char *sql,
			  List *attnames)
{
	PGresult   *res;
	bool		binary = pg_get_client_encoding() == GetDatabaseEncoding();
	int			i = 0;
	ListCell   *lc;

	r->copy.sql = sql;
	if (!PQsendPrepare(r->copy.conn, "", sql, 0, NULL))
		remote_error(&r->copy, NULL);
	PQclear(last_result(&r->copy, PGRES_COMMAND_OK));
	if (!PQsendDescribePrepared(r->copy.conn, ""))
		remote_error(&r->copy, NULL);
	res = last_result(&r->copy, PGRES_COMMAND_OK);

	if (PQnfields(res) != list_length(attnames))
		binary = false;
	foreach(lc, attnames)
	{
		Oid			type = get_atttype(job->target,
									   get_attnum(job->target,
												  strVal(lfirst(lc))));

		if (binary && (type >= FirstGenbkiObjectId || PQftype(res, i) != type))
			binary = false;
		i++;
	}
	PQclear(res);
	r->binary = binary;
	r->described = true;
	elog(DEBUG1, "tools job %lld reads rows in %s form",
		 (long long) job->job_id, binary ? "binary" : "text");
}

/*
 * The remote SQL with each column cast to the type that the binary form
 * was chosen for, by position: the remote server converts a column whose
 * type changed on it since the call began, or fails, and this server never
 * reads one type's bytes as another's.  A column of the type already costs
 * nothing.
 */
static char *
typed_sql(const ToolsJob *job, const char *sql, List *attnames)
{
	StringInfoData buf;
	ListCell   *lc;
	int			i = 0;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	foreach(lc, attnames)
	{
		Oid			type = get_atttype(job->target,
									   get_attnum(job->target,
												  strVal(lfirst(lc))));

		appendStringInfo(&buf, "%ss.c%d::%s", i > 0 ? ", " : "", i + 1,
						 format_type_extended(type, -1,
											  FORMAT_TYPE_FORCE_QUALIFY));
		i++;
	}
	appendStringInfo(&buf, " FROM (%s) AS s(", sql);
	for (i = 0; i < list_length(attnames); i++)
		appendStringInfo(&buf, "%sc%d", i > 0 ? ", " : "", i + 1);
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/* The connection that remote_read() reads from, during CopyFrom(). */
static ToolsRemote *reading = NULL;

/*
 * COPY FROM's data source: the rows of the remote COPY, at least minread
 * bytes of them unless it has ended (then 0), at most maxread.
 */
static int
remote_read(void *outbuf, int minread, int maxread)
{
	ToolsRemote *r = reading;
	int			copied = 0;

	while (copied < maxread && !r->done)
	{
		int			n;

		if (r->row_pos == r->row_len)
		{
			if (r->row != NULL)
				PQfreemem(r->row);
			r->row = NULL;
			r->row_pos = r->row_len = 0;
			n = PQgetCopyData(r->copy.conn, &r->row, true);
			if (n == 0 && PQconsumeInput(r->copy.conn))
				n = PQgetCopyData(r->copy.conn, &r->row, true);
			if (n == 0)
			{
				/* Nothing more has come yet: hand over what has. */
				if (copied >= minread)
					break;
				wait_socket(&r->copy, WL_SOCKET_READABLE);
				continue;
			}
			if (n < 0)
			{
				/*
				 * The end, or a broken connection: the COPY's outcome, then
				 * no more results.  Where COPY FROM's parser stands when an
				 * error arrives depends on how much arrived before it: the
				 * remote server's errors are the batch's, not a line's.
				 */
				ErrorContextCallback *parser = error_context_stack;

				error_context_stack = r->context;
				if (n == -2)
					remote_error(&r->copy, NULL);
				PQclear(last_result(&r->copy, PGRES_COMMAND_OK));
				error_context_stack = parser;
				r->done = true;
				break;
			}
			r->row_len = n;
		}
		n = Min(maxread - copied, r->row_len - r->row_pos);
		memcpy((char *) outbuf + copied, r->row + r->row_pos, n);
		copied += n;
		r->row_pos += n;
	}
	return copied;
}

/*
 * Parse the rows of the remote COPY, each in the target's layout with the
 * defaults of the columns not copied, and hand them to the bulk path.
 * Errors say the line and column, as COPY FROM's do.
 */
static void
read_rows(CopyFromState cstate, BulkDest *dest)
{
	ExprContext *econtext = tools_bulk_econtext(dest);
	ErrorContextCallback errcb;

	errcb.callback = CopyFromErrorCallback;
	errcb.arg = cstate;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	for (;;)
	{
		TupleTableSlot *slot = tools_bulk_slot(dest);
		MemoryContext oldcxt;
		bool		found;

		CHECK_FOR_INTERRUPTS();
		oldcxt = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
		found = NextCopyFrom(cstate, econtext, slot->tts_values,
							 slot->tts_isnull);
		MemoryContextSwitchTo(oldcxt);
		if (!found)
			break;
		ExecStoreVirtualTuple(slot);
		tools_bulk_store(dest, slot);
	}
	error_context_stack = errcb.previous;
}

/*
 * Copy one batch with COPY: plan is the batch's SELECT, params its key
 * range.  Returns false, having copied nothing, when its plan does not fit
 * (and then every later batch of the call reads through the foreign table);
 * otherwise sets rows to the rows written.
 */
bool
tools_remote_batch(ToolsJob *job, SPIPlanPtr plan, ParamListInfo params,
				   uint64 *rows)
{
	ToolsRemote *r = job->remote;
	char	   *sql;
	const char *why;
	List	   *attnums = NIL;
	List	   *attnames = NIL;
	ListCell   *lc;
	List	   *rtable;
	List	   *perminfos;
	List	   *options;
	ParseState *pstate;
	Relation	rel;
	CopyFromState cstate;
	PGresult   *res;
	int			level = -1;

	if (r->disabled)
		return false;

	sql = remote_columns_sql(job, r, plan, params, &attnums, &why);
	if (sql == NULL)
	{
		elog(DEBUG1, "tools job %lld reads %s through the foreign table: %s",
			 (long long) job->job_id, job->source_name, why);
		r->disabled = true;
		return false;
	}
	foreach(lc, attnums)
		attnames = lappend(attnames,
						   makeString(get_attname(job->source, lfirst_int(lc),
												  false)));

	if (r->copy.conn == NULL)
		remote_connect(job, r, &r->copy);
	if (!r->described)
		decide_format(job, r, sql, attnames);

	rel = table_open(job->target, RowExclusiveLock);
	pstate = make_parsestate(NULL);
	options = list_make1(makeDefElem("format",
									 (Node *) makeString(r->binary ? "binary" : "text"),
									 -1));
	if (!r->binary)
	{
		/* The remote server writes the database's encoding, in ISO styles. */
		options = lappend(options,
						  makeDefElem("encoding",
									  (Node *) makeString((char *) GetDatabaseEncodingName()),
									  -1));
		level = tools_fix_style();
	}

	/*
	 * Locks before the snapshot.  COPY (SELECT ...) takes its snapshot before
	 * its query locks what it reads, and a table rewritten by DDL that
	 * commits while the COPY waits for its lock (ALTER TABLE ... TYPE, which
	 * is not MVCC-safe) would look empty to it: a batch's range would be
	 * copied without a row.  The same SELECT, without rows, takes the locks
	 * first; the COPY that follows in the transaction takes a snapshot of
	 * its own, after them.
	 */
	send_command(&r->copy, "BEGIN ISOLATION LEVEL READ COMMITTED");
	PQclear(last_result(&r->copy, PGRES_COMMAND_OK));
	send_command(&r->copy, psprintf("SELECT FROM (%s) AS s LIMIT 0", sql));
	PQclear(last_result(&r->copy, PGRES_TUPLES_OK));

	send_command(&r->copy, r->binary ?
				 psprintf("COPY (%s) TO STDOUT (FORMAT binary)",
						  typed_sql(job, sql, attnames)) :
				 psprintf("COPY (%s) TO STDOUT", sql));
	res = next_result(&r->copy);
	if (PQresultStatus(res) != PGRES_COPY_OUT)
		remote_error(&r->copy, res);
	PQclear(res);
	r->done = false;

	PushActiveSnapshot(GetTransactionSnapshot());
	reading = r;
	r->context = error_context_stack;
	if (job->bulk)
	{
		/* COPY FROM's parser, and the bulk path's writer. */
		BulkDest   *dest = tools_bulk_begin(job, false);

		cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, remote_read,
							   attnames, options);
		read_rows(cstate, dest);
		EndCopyFrom(cstate);
		*rows = tools_bulk_end(dest);
	}
	else
	{
		/* COPY FROM, with the target as its range table. */
		tools_target_rtable(job, &rtable, &perminfos);
		pstate->p_rtable = rtable;
#if PG_VERSION_NUM >= 160000
		pstate->p_rteperminfos = perminfos;
#endif
		cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, remote_read,
							   attnames, options);
		*rows = CopyFrom(cstate);
		EndCopyFrom(cstate);
	}
	reading = NULL;
	PopActiveSnapshot();
	send_command(&r->copy, "COMMIT");
	PQclear(last_result(&r->copy, PGRES_COMMAND_OK));

	if (level >= 0)
		tools_restore_settings(level);
	table_close(rel, NoLock);
	r->copy.sql = NULL;
	return true;
}

/*
 * Ask the remote server, over a second connection, for the upper end of
 * the next batch while this one streams: plan is the bound statement,
 * params its lower end (this batch's upper end).  False, having sent
 * nothing, when its plan is more than one scan on the remote server; the
 * caller then finds each bound itself, before its batch.
 */
bool
tools_remote_prefetch(ToolsJob *job, SPIPlanPtr plan, ParamListInfo params)
{
	ToolsRemote *r = job->remote;
	char	   *sql;
	const char *why;
	List	   *attnums;

	if (r->disabled || r->no_prefetch)
		return false;
	sql = remote_sql(r, plan, params, &attnums, &why);
	if (sql == NULL)
	{
		elog(DEBUG1, "tools job %lld finds the upper end of each batch before the batch: %s",
			 (long long) job->job_id, why);
		r->no_prefetch = true;
		return false;
	}
	remote_send(job, r, &r->bounds, sql, 0, NULL);
	return true;
}

/*
 * The answer to tools_remote_prefetch(): the key values of the next
 * batch's upper end, into upper (in the current memory context); false
 * when no key is left for a next batch.
 */
bool
tools_remote_prefetched(ToolsJob *job, Datum *upper)
{
	RemoteConn *c = &job->remote->bounds;
	PGresult   *res = last_result(c, PGRES_TUPLES_OK);
	char	  **text = palloc0(sizeof(char *) * job->nkeys);
	bool		found;
	int			i;

	if (res == NULL || PQnfields(res) != job->nkeys || PQntuples(res) > 1)
	{
		PQclear(res);
		elog(ERROR, "unexpected result of the bound statement on server \"%s\"",
			 c->server_name);
	}
	found = PQntuples(res) == 1;
	for (i = 0; found && i < job->nkeys; i++)
		if (!PQgetisnull(res, 0, i))
			text[i] = pstrdup(PQgetvalue(res, 0, i));
	PQclear(res);
	c->sql = NULL;
	for (i = 0; found && i < job->nkeys; i++)
	{
		if (text[i] == NULL)
			elog(ERROR, "bound statement on server \"%s\" returned a NULL key",
				 c->server_name);
		upper[i] = tools_key_value(&job->keys[i], text[i]);
	}
	return found;
}

/* The place of a source column among the remote SQL's, from 0; -1: none. */
static int
remote_position(List *attnums, AttrNumber attnum)
{
	ListCell   *lc;

	foreach(lc, attnums)
		if (lfirst_int(lc) == attnum)
			return foreach_current_index(lc);
	return -1;
}

/*
 * The job's own connection that a statement of a repair goes over: its
 * first, or, with second, the other one, so that two statements run on
 * the source's server at once.
 */
static RemoteConn *
repair_conn(ToolsRemote *r, bool second)
{
	return second ? &r->bounds : &r->copy;
}

/*
 * Send a statement on a postgres_fdw source, planned here for these
 * parameters, to its server over one of the job's own connections (made in
 * cxt, repair_conn()), without waiting: the caller works meanwhile, then
 * takes the rows with tools_remote_int8s().  False, having sent nothing,
 * where the job cannot connect of its own or the plan is more than one
 * foreign scan.
 */
bool
tools_remote_send(ToolsJob *job, SPIPlanPtr plan, ParamListInfo params,
				  bool second, MemoryContext cxt)
{
	ToolsRemote *r = own_remote(job, "counts the keys of %s on this server: %s", cxt);
	const char *why;
	List	   *attnums;
	char	   *sql;

	if (r == NULL)
		return false;
	sql = remote_sql(r, plan, params, &attnums, &why);
	if (sql == NULL)
	{
		elog(DEBUG1, "tools job %lld counts the keys of %s on this server: %s",
			 (long long) job->job_id, job->source_name, why);
		return false;
	}
	remote_send(job, r, repair_conn(r, second), sql, 0, NULL);
	return true;
}

/*
 * The rows of the statement that tools_remote_send() or
 * tools_remote_send_ranges() sent over the same connection: each its first
 * column, and with seconds its second, as int8, into arrays made in cxt.
 * Returns the rows.
 */
int64
tools_remote_int8s(ToolsJob *job, bool second, int64 **firsts,
				   int64 **seconds, MemoryContext cxt)
{
	RemoteConn *c = repair_conn(job->remote, second);
	PGresult   *res = last_result(c, PGRES_TUPLES_OK);
	int64		n = PQntuples(res);
	int64		row;

	if (PQnfields(res) != (seconds != NULL ? 2 : 1))
	{
		PQclear(res);
		elog(ERROR, "unexpected result of the statement on server \"%s\"",
			 c->server_name);
	}
	*firsts = MemoryContextAlloc(cxt, sizeof(int64) * Max(n, 1));
	if (seconds != NULL)
		*seconds = MemoryContextAlloc(cxt, sizeof(int64) * Max(n, 1));
	for (row = 0; row < n; row++)
	{
		(*firsts)[row] = strtoi64(PQgetvalue(res, row, 0), NULL, 10);
		if (seconds != NULL)
			(*seconds)[row] = strtoi64(PQgetvalue(res, row, 1), NULL, 10);
	}
	PQclear(res);
	c->sql = NULL;
	return n;
}

/*
 * Have the source's server count and hash a key range of a postgres_fdw
 * source, so that neither side ships rows: plan is the range's SELECT of
 * the copied columns, by name in the target's order, planned here for
 * these parameters to get postgres_fdw's remote SQL; the remote server
 * runs the count and the sum of a row hash (a format for the list of a
 * row's columns) over those rows, each column cast to its target column's
 * type, as the target's side is hashed here: fast_hash where the remote
 * server's hash_record_extended() gives this one's value, portable_hash
 * otherwise; *row_hash says which, for the target's side.  Sent without waiting: the caller
 * hashes the target meanwhile, then takes the answer with
 * tools_remote_hash_result().  Keyed, the remote server returns each row's
 * key and hash instead, in the plan's order, taken with
 * tools_remote_keyed_result().  False, having sent nothing, where the plan
 * is more than one foreign scan, a column's type is not built in (its
 * name may mean another type there), or the role may not connect; the
 * caller then hashes the source's rows here.
 *
 * What the connection needs lives in cxt, and the connection for the
 * caller's job (tools_remote_close()); it
 * writes values in the styles this session hashes in (tools_fix_style(),
 * and this session's time zone and bytea output).
 */
bool
tools_remote_hash_send(ToolsJob *job, SPIPlanPtr plan, ParamListInfo params,
					   bool keyed, const char *fast_hash,
					   const char *portable_hash, const char **row_hash,
					   MemoryContext cxt)
{
	ToolsRemote *r = own_remote(job, "hashes the rows of %s on this server: %s", cxt);
	const char *why;
	char	   *sql;
	List	   *attnums;
	StringInfoData list;
	StringInfoData hash;
	int			i;

	if (r == NULL)
		return false;
	sql = remote_columns_sql(job, r, plan, params, &attnums, &why);
	initStringInfo(&list);
	for (i = 0; sql != NULL && i < job->ncolumns; i++)
	{
		AttrNumber	attnum = job->target_attnums[i];
		AttrNumber	source_attnum = get_attnum(job->source,
											   get_attname(job->target, attnum, false));
		Oid			type;
		int32		typmod;
		Oid			collation;
		int			k;

		/* Its place in the remote SQL's columns, which are in its own order. */
		k = remote_position(attnums, source_attnum);
		get_atttypetypmodcoll(job->target, attnum, &type, &typmod, &collation);
		if (k < 0 || type >= FirstGenbkiObjectId)
		{
			why = "a copied column's type is not built in";
			sql = NULL;
			break;
		}
		appendStringInfo(&list, "%ss.c%d::%s", i > 0 ? ", " : "", k + 1,
						 format_type_extended(type, typmod,
											  FORMAT_TYPE_TYPEMOD_GIVEN |
											  FORMAT_TYPE_FORCE_QUALIFY));
	}
	if (sql == NULL)
	{
		elog(DEBUG1, "tools job %lld hashes the rows of %s on this server: %s",
			 (long long) job->job_id, job->source_name, why);
		return false;
	}

	if (r->copy.conn == NULL)
	{
		PGresult   *res;
		const char *check = "SELECT pg_catalog.hash_record_extended("
			"ROW(1::pg_catalog.int8, 'tools'::pg_catalog.text COLLATE pg_catalog.\"C\"), 0)";
		char	   *here;

		tools_execute(check, 0, NULL, NULL, NULL, SPI_OK_SELECT);
		here = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		remote_connect(job, r, &r->copy);
		send_command(&r->copy,
					 psprintf("SET timezone = %s; SET bytea_output = %s",
							  quote_literal_cstr(pg_get_timezone_name(session_timezone)),
							  quote_literal_cstr(GetConfigOption("bytea_output", false, false))));
		PQclear(last_result(&r->copy, PGRES_COMMAND_OK));
		if (PQserverVersion(r->copy.conn) >= 140000)
		{
			send_command(&r->copy, check);
			res = last_result(&r->copy, PGRES_TUPLES_OK);
			r->same_hash = PQntuples(res) == 1 &&
				strcmp(PQgetvalue(res, 0, 0), here) == 0;
			PQclear(res);
		}
		elog(DEBUG1, "tools job %lld hashes the rows of %s on server \"%s\"%s",
			 (long long) job->job_id, job->source_name, r->server_name,
			 r->same_hash ? "" : " with md5(): it hashes a record otherwise than this server");
	}
	*row_hash = r->same_hash ? fast_hash : portable_hash;
	initStringInfo(&hash);
	if (keyed)
	{
		appendStringInfoString(&hash, "SELECT ");
		for (i = 0; i < job->nkeys; i++)
		{
			AttrNumber	attnum = get_attnum(job->source, job->keys[i].attname);

			appendStringInfo(&hash, "s.c%d, ",
							 remote_position(attnums, attnum) + 1);
		}
		appendStringInfo(&hash, *row_hash, list.data);
	}
	else
	{
		appendStringInfo(&hash, "SELECT pg_catalog.count(*), pg_catalog.sum(");
		appendStringInfo(&hash, *row_hash, list.data);
		appendStringInfoChar(&hash, ')');
	}
	appendStringInfo(&hash, " FROM (%s) AS s(", sql);
	for (i = 0; i < job->ncolumns; i++)
		appendStringInfo(&hash, "%sc%d", i > 0 ? ", " : "", i + 1);
	appendStringInfoChar(&hash, ')');
	if (keyed)
	{
		appendStringInfoString(&hash, " ORDER BY ");
		for (i = 0; i < job->nkeys; i++)
			appendStringInfo(&hash, "%s%d", i > 0 ? ", " : "", i + 1);
	}
	send_command(&r->copy, hash.data);
	return true;
}

/*
 * Take in what the remote server has sent of the answer so far, without
 * waiting, so that it does not wait for this server to read.
 */
void
tools_remote_consume(ToolsJob *job)
{
	RemoteConn *c = &job->remote->copy;

	if (!PQconsumeInput(c->conn))
		remote_error(c, NULL);
}

/*
 * The answer to a keyed tools_remote_hash_send(): at most max rows, each
 * its key's columns (job->nkeys of them, in keys) and its hash (in hashes),
 * in the key's order.  Returns the rows.  The caller has fixed the styles
 * of text (tools_fix_style()), as for the statement.
 */
int64
tools_remote_keyed_result(ToolsJob *job, Datum *keys, int64 *hashes, int64 max)
{
	RemoteConn *c = &job->remote->copy;
	PGresult   *res = last_result(c, PGRES_TUPLES_OK);
	int64		n = PQntuples(res);
	FmgrInfo   *input = palloc(sizeof(FmgrInfo) * job->nkeys);
	int64		row;
	int			i;

	if (PQnfields(res) != job->nkeys + 1 || n > max)
	{
		PQclear(res);
		elog(ERROR, "unexpected result of the hash statement on server \"%s\"",
			 c->server_name);
	}
	for (i = 0; i < job->nkeys; i++)
		fmgr_info(job->keys[i].input, &input[i]);
	PG_TRY();
	{
		for (row = 0; row < n; row++)
		{
			for (i = 0; i < job->nkeys; i++)
				keys[row * job->nkeys + i] =
					InputFunctionCall(&input[i], PQgetvalue(res, row, i),
									  job->keys[i].ioparam, -1);
			hashes[row] = PQgetisnull(res, row, job->nkeys) ? 0 :
				strtoi64(PQgetvalue(res, row, job->nkeys), NULL, 10);
		}
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	c->sql = NULL;
	return n;
}

/*
 * The answer to tools_remote_hash_send(): the count and the hash sum, as
 * text, into values (the sum "0" for no row).
 */
void
tools_remote_hash_result(ToolsJob *job, char **values)
{
	RemoteConn *c = &job->remote->copy;
	PGresult   *res = last_result(c, PGRES_TUPLES_OK);

	if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 2)
	{
		PQclear(res);
		elog(ERROR, "unexpected result of the hash statement on server \"%s\"",
			 c->server_name);
	}
	values[0] = pstrdup(PQgetvalue(res, 0, 0));
	values[1] = PQgetisnull(res, 0, 1) ? "0" : pstrdup(PQgetvalue(res, 0, 1));
	PQclear(res);
	c->sql = NULL;
}

/*
 * Ask the source's server a question: over the job's COPY connection, or,
 * for a job that has none, over a connection opened for it and closed
 * after; with keep, a context that lives as long as the job's description,
 * the job's connection is made there and left open for the questions
 * after.  Returns the rows (the caller clears them), or NULL where the job
 * cannot connect (source_obstacle()).
 */
static PGresult *
remote_ask(ToolsJob *job, const char *sql, int nparams,
		   const char *const *params, MemoryContext keep)
{
	ToolsRemote *r = job->remote;
	ToolsRemote own;
	PGresult   *res = NULL;

	if (keep != NULL)
	{
		r = own_remote(job, "cannot ask the server of %s: %s", keep);
		if (r == NULL)
			return NULL;
	}
	else if (r == NULL || (r->copy.conn == NULL && r->disabled))
	{
		memset(&own, 0, sizeof(own));
		if (source_obstacle(job, &own) != NULL)
			return NULL;
		r = &own;
	}
	PG_TRY();
	{
		remote_send(job, r, &r->copy, sql, nparams, params);
		res = last_result(&r->copy, PGRES_TUPLES_OK);
		r->copy.sql = NULL;
	}
	PG_FINALLY();
	{
		if (r == &own)
			close_conn(&own.copy);
	}
	PG_END_TRY();
	return res;
}

/* The source's remote table, as an SQL name there. */
static const char *
remote_table_sql(const ToolsJob *job)
{
	const char *nspname;
	const char *relname;

	remote_table(GetForeignTable(job->source), &nspname, &relname);
	return quote_qualified_identifier(nspname, relname);
}

/*
 * Whether the source's remote table is the job's target: a postgres_fdw
 * server that points back at this server and this database, and a remote
 * table of the target's OID.  Such a job would read what it writes, and a
 * trunc run would wait for ever on its own lock.  The remote server is
 * this one when it started at the same instant.  Asked over the job's COPY
 * connection, which the batches use next, or, for a job that reads
 * through the foreign table, over a connection opened for the question.
 */
bool
tools_remote_reads_target(ToolsJob *job)
{
	const char *params[1] = {remote_table_sql(job)};
	PGresult   *res;
	bool		same;

	res = remote_ask(job,
					 "SELECT (EXTRACT(epoch FROM pg_catalog.pg_postmaster_start_time())"
					 " OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8,"
					 " pg_catalog.current_database(), pg_catalog.to_regclass($1)::pg_catalog.oid",
					 1, params, NULL);
	if (res == NULL)
		return false;
	same = !PQgetisnull(res, 0, 2) &&
		strtoll(PQgetvalue(res, 0, 0), NULL, 10) ==
		PgStartTime + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) *
		SECS_PER_DAY * USECS_PER_SEC &&
		strcmp(PQgetvalue(res, 0, 1), get_database_name(MyDatabaseId)) == 0 &&
		strtoul(PQgetvalue(res, 0, 2), NULL, 10) == job->target;
	PQclear(res);
	return same;
}

/* The source's remote column of the job's key (of one column), as SQL there. */
static const char *
remote_key_sql(const ToolsJob *job)
{
	const char *column = job->keys[0].attname;
	ListCell   *lc;

	foreach(lc, GetForeignColumnOptions(job->source,
										get_attnum(job->source, column)))
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "column_name") == 0)
			column = defGetString(def);
	}
	return quote_identifier(column);
}

/*
 * Send a statement on the postgres_fdw source's key within some key
 * ranges (ranges_sql: tools_range_keys_sql() or tools_range_counts_sql(),
 * the first and the last key of each range as bigint arrays in text) over
 * one of the job's own connections (made in cxt, repair_conn()), without
 * waiting; the rows come with tools_remote_int8s().  False, having sent
 * nothing, where the job cannot connect of its own.
 */
bool
tools_remote_send_ranges(ToolsJob *job, ToolsRangesSql ranges_sql,
						 const char *firsts, const char *lasts, bool second,
						 MemoryContext cxt)
{
	ToolsRemote *r = own_remote(job, "reads the keys of %s through postgres_fdw: %s", cxt);
	const char *params[2] = {firsts, lasts};

	if (r == NULL)
		return false;
	remote_send(job, r, repair_conn(r, second),
				ranges_sql(remote_table_sql(job), remote_key_sql(job)),
				2, params);
	return true;
}

/*
 * Whether the postgres_fdw source's remote table is best counted range by
 * range through the index of its key (TOOLS_KEY_INDEXED_SQL), as its
 * server tells over the job's own connection (made in cxt); false where it
 * cannot be asked.
 */
bool
tools_remote_key_indexed(ToolsJob *job, MemoryContext cxt)
{
	const char *params[2] = {remote_table_sql(job), remote_key_sql(job)};
	PGresult   *res = remote_ask(job, TOOLS_KEY_INDEXED_SQL, 2, params, cxt);
	bool		indexed;

	if (res == NULL)
		return false;
	indexed = PQntuples(res) == 1 && PQnfields(res) == 1 &&
		strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return indexed;
}

/*
 * Where a postgres_fdw source stands (TOOLS_SNAPSHOT_SQL), as its server
 * tells (remote_ask(), keep as there); false where it cannot be asked, or
 * its remote table is not one whose rows keep an xmin.
 */
bool
tools_remote_snapshot(ToolsJob *job, ToolsSnapshot *snap, MemoryContext keep)
{
	const char *params[1] = {remote_table_sql(job)};
	PGresult   *res = remote_ask(job, TOOLS_SNAPSHOT_SQL, 1, params, keep);
	bool		known;
	int			i;

	if (res == NULL)
		return false;
	known = PQntuples(res) == 1 && PQnfields(res) == 5;
	for (i = 0; known && i < 5; i++)
		known = !PQgetisnull(res, 0, i);
	known = known && strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	if (known)
	{
		snap->xmin = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
		snap->xmax = strtoi64(PQgetvalue(res, 0, 1), NULL, 10);
		snap->system = strtoi64(PQgetvalue(res, 0, 2), NULL, 10);
		snap->relation = strtoi64(PQgetvalue(res, 0, 4), NULL, 10);
	}
	PQclear(res);
	return known;
}

/*
 * Send the statement that reads the keys of the postgres_fdw source's rows
 * written since transaction xid, the next at most limit after *after
 * (NULL: from the first), in the key's order (tools_changed_keys_sql(), on
 * the remote table and its column), over the job's own connection (made
 * in cxt and kept for the statements after), without waiting: the keys
 * come with tools_remote_changed_keys().  The job's key is one integer
 * column.
 */
void
tools_remote_send_changed(ToolsJob *job, const char *xid, const Datum *after,
						  int64 limit, MemoryContext cxt)
{
	ToolsRemote *r = own_remote(job, "cannot ask the server of %s: %s", cxt);
	const char *params[2];

	if (r == NULL)
		elog(ERROR, "tools job %lld cannot ask the server of %s for its changed rows",
			 (long long) job->job_id, job->source_name);
	params[0] = xid;
	params[1] = after != NULL ? tools_key_text(&job->keys[0], after[0]) : NULL;
	remote_send(job, r, &r->copy,
				tools_changed_keys_sql(job, remote_table_sql(job),
									   remote_key_sql(job), after != NULL, limit),
				after != NULL ? 2 : 1, params);
}

/*
 * The keys that the statement of tools_remote_send_changed() read, at most
 * limit, into keys.  Returns how many.
 */
int64
tools_remote_changed_keys(ToolsJob *job, int64 limit, Datum *keys)
{
	RemoteConn *c = &job->remote->copy;
	PGresult   *res = last_result(c, PGRES_TUPLES_OK);
	int64		n;
	int64		row;

	c->sql = NULL;
	n = res != NULL ? PQntuples(res) : -1;
	if (res == NULL || PQnfields(res) != 1 || n > limit)
	{
		PQclear(res);
		elog(ERROR, "unexpected result of the changed rows statement on the server of %s",
			 job->source_name);
	}
	PG_TRY();
	{
		for (row = 0; row < n; row++)
			keys[row] = tools_key_value(&job->keys[0], PQgetvalue(res, row, 0));
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	return n;
}

#else							/* PG_VERSION_NUM < 140000 */

bool
tools_remote_reads_target(ToolsJob *job)
{
	return false;
}

bool
tools_remote_snapshot(ToolsJob *job, ToolsSnapshot *snap, MemoryContext keep)
{
	return false;
}

/* Never called: no source's snapshot is known. */
void
tools_remote_send_changed(ToolsJob *job, const char *xid, const Datum *after,
						  int64 limit, MemoryContext cxt)
{
}

/* Never called: no source's snapshot is known. */
int64
tools_remote_changed_keys(ToolsJob *job, int64 limit, Datum *keys)
{
	return 0;
}

/* Never called: no job reads with COPY. */
bool
tools_remote_batch(ToolsJob *job, SPIPlanPtr plan, ParamListInfo params,
				   uint64 *rows)
{
	return false;
}

bool
tools_remote_prefetch(ToolsJob *job, SPIPlanPtr plan, ParamListInfo params)
{
	return false;
}

bool
tools_remote_prefetched(ToolsJob *job, Datum *upper)
{
	return false;
}

bool
tools_remote_hash_send(ToolsJob *job, SPIPlanPtr plan, ParamListInfo params,
					   bool keyed, const char *fast_hash,
					   const char *portable_hash, const char **row_hash,
					   MemoryContext cxt)
{
	return false;
}

bool
tools_remote_send(ToolsJob *job, SPIPlanPtr plan, ParamListInfo params,
				  bool second, MemoryContext cxt)
{
	return false;
}

bool
tools_remote_send_ranges(ToolsJob *job, ToolsRangesSql ranges_sql,
						 const char *firsts, const char *lasts, bool second,
						 MemoryContext cxt)
{
	return false;
}

bool
tools_remote_key_indexed(ToolsJob *job, MemoryContext cxt)
{
	return false;
}

/* Never called: nothing is sent. */
int64
tools_remote_int8s(ToolsJob *job, bool second, int64 **firsts,
				   int64 **seconds, MemoryContext cxt)
{
	return 0;
}

/* Never called: nothing is sent. */
void
tools_remote_consume(ToolsJob *job)
{
}

/* Never called: nothing is sent. */
int64
tools_remote_keyed_result(ToolsJob *job, Datum *keys, int64 *hashes, int64 max)
{
	return 0;
}

/* Never called: nothing is sent. */
void
tools_remote_hash_result(ToolsJob *job, char **values)
{
}

#endif							/* PG_VERSION_NUM >= 140000 */

/*
 * Close a connection, if open.  A command still running there (a COPY that
 * an error interrupted) is canceled first: the remote server would
 * otherwise go on until it next writes to the closed connection.
 */
static void
close_conn(RemoteConn *c)
{
	if (c->conn == NULL)
		return;
	if (PQtransactionStatus(c->conn) == PQTRANS_ACTIVE)
	{
		PGcancel   *cancel = PQgetCancel(c->conn);
		char		errbuf[256];

		if (cancel != NULL)
		{
			(void) PQcancel(cancel, errbuf, sizeof(errbuf));
			PQfreeCancel(cancel);
		}
	}
	PQfinish(c->conn);
	ReleaseExternalFD();
	c->conn = NULL;
}

/* Close the job's connections. */
void
tools_remote_close(ToolsJob *job)
{
	ToolsRemote *r = job->remote;

	if (r == NULL)
		return;
	if (r->row != NULL)
		PQfreemem(r->row);
	r->row = NULL;
	close_conn(&r->copy);
	close_conn(&r->bounds);
}
