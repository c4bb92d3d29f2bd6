/*-------------------------------------------------------------------------
 *
 * worker.c
 *		tools.launch(), tools.cancel(), tools.wait(): a run driven by
 *		background workers inside the server.
 *
 * tools.launch() registers dynamic background workers (no preloaded
 * library needed) that connect to the caller's database as the caller's
 * role.  Each worker takes the jobs of its run left to do in the order of
 * tools.run()'s statements (priority, then configuration and part), and
 * runs each as the statement CALL tools.start(N), exactly as a client would: same code, same locks,
 * same bookkeeping.  Priorities order the jobs; they are not barriers, as
 * with the statements of tools.run() piped into parallel clients.
 *
 * A worker claims a job by taking the job's lock, the session lock that
 * tools.start() takes, without waiting: two workers, or a worker and a
 * client's CALL, never run one job.  It takes a job that is pending, one
 * left running by a process that died (nobody holds its lock), or one that
 * failed before the run was launched; a job that fails under a worker is
 * recorded failed (tools.start() does that) and left for a person to look
 * at, and the worker goes on with the next.
 *
 * Each worker holds its run's lock in share mode while it lives:
 * tools.wait() waits until no process holds it, nor any job lock of the
 * run.  tools.cancel() takes the run's cancel lock, which stops workers
 * from claiming more jobs, and cancels the statement of each worker, as
 * pg_cancel_backend() does: the batch in progress rolls back, the job is
 * recorded failed with the committed batches kept, and the worker exits.
 *
 * IDENTIFICATION
 *		src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "tools.h"

/* How often tools.launch(), tools.cancel() and tools.wait() look again. */
#define LAUNCH_POLL_MS	10
#define WAIT_POLL_MS	250

/* What tools.launch() hands each worker, in bgw_extra. */
typedef struct WorkerArgs
{
	Oid			database;
	Oid			role;
	int64		run_id;
	TimestampTz launched;		/* failures after this are the workers' */
} WorkerArgs;

/*
 * Jobs a worker may take, $1 the run and $2 the launch: pending, left
 * running by a process that died (the caller then holds the job's lock), or
 * failed before the launch.
 */
#define CANDIDATE_SQL \
	" FROM " TOOLS_SCHEMA ".job AS j LEFT JOIN " TOOLS_SCHEMA ".config AS c" \
	" ON c.config_id OPERATOR(pg_catalog.=) j.config_id" \
	" WHERE j.run_id OPERATOR(pg_catalog.=) $1" \
	" AND (j.state OPERATOR(pg_catalog.=) 'pending'" \
	" OR j.state OPERATOR(pg_catalog.=) 'running'" \
	" OR j.state OPERATOR(pg_catalog.=) 'failed'" \
	" AND (j.updated IS NULL OR j.updated OPERATOR(pg_catalog.<) $2))"

/* Run "SELECT list" on the processes that hold an advisory lock. */
static uint64
select_holders(int64 id, int space, const char *list)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2];

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(space);
	return tools_execute(psprintf("SELECT %s FROM " TOOLS_HELD_LOCKS_SQL " AS h"
								  " WHERE h.id OPERATOR(pg_catalog.=) $1"
								  " AND h.space OPERATOR(pg_catalog.=) $2", list),
						 2, types, values, NULL, SPI_OK_SELECT);
}

/*
 * A process, other than this one, that holds an advisory lock; 0 if none.
 * The caller is connected to SPI.
 */
int
tools_lock_holder(int64 id, int space)
{
	bool		isnull;
	Datum		pid;

	select_holders(id, space, "pg_catalog.min(pid)");
	pid = tools_result_value(1, &isnull);
	return isnull ? 0 : DatumGetInt32(pid);
}

/* Sleep a while on the latch, or less if it is set. */
static void
nap(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* Wait until no other process holds an advisory lock. */
static void
wait_for_holders(int64 id, int space)
{
	while (tools_lock_holder(id, space) != 0)
		nap(WAIT_POLL_MS);
}

/*
 * Whether tools.cancel() is stopping the run: it holds the run's cancel
 * lock.
 */
static bool
run_canceled(int64 run_id)
{
	LOCKTAG		tag;

	TOOLS_SET_LOCKTAG(tag, run_id, TOOLS_CANCEL_LOCK_SPACE);
	if (LockAcquire(&tag, ShareLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, ShareLock, true);
	return false;
}

/* The job whose lock this worker holds, 0 for none. */
static int64 held_job = 0;

/* The jobs this worker has taken, not to be taken again. */
static int64 *tried = NULL;
static int	ntried = 0;

static bool
was_tried(int64 job_id)
{
	int			i;

	for (i = 0; i < ntried; i++)
		if (tried[i] == job_id)
			return true;
	return false;
}

static void
release_job(void)
{
	LOCKTAG		tag;

	if (held_job == 0)
		return;
	TOOLS_SET_LOCKTAG(tag, held_job, TOOLS_JOB_LOCK_SPACE);
	LockRelease(&tag, ExclusiveLock, true);
	held_job = 0;
}

/*
 * Claim the next job of the run: the first candidate whose lock this
 * process gets at once, and that is still a candidate once it holds the
 * lock (a client may have completed it just before).  Returns its id, 0
 * when none is left; the worker then holds the job's lock (held_job).
 * Jobs this worker has taken are not taken again.
 */
static int64
claim_job(const WorkerArgs *args)
{
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, INT8OID};
	Datum		values[3];
	int64		claimed = 0;
	int64	   *ids;
	uint64		n;
	uint64		i;

	values[0] = Int64GetDatum(args->run_id);
	values[1] = TimestampTzGetDatum(args->launched);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	n = tools_execute("SELECT j.job_id" CANDIDATE_SQL " ORDER BY " TOOLS_JOB_ORDER,
					  2, types, values, NULL, SPI_OK_SELECT);
	ids = palloc(sizeof(int64) * (n + 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
											 SPI_tuptable->tupdesc, 1, &isnull));
	}

	for (i = 0; i < n && claimed == 0; i++)
	{
		LOCKTAG		tag;

		if (was_tried(ids[i]))
			continue;
		TOOLS_SET_LOCKTAG(tag, ids[i], TOOLS_JOB_LOCK_SPACE);
		if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
			continue;
		held_job = ids[i];

		/* Look again, at what committed before the lock was taken. */
		PopActiveSnapshot();
		PushActiveSnapshot(GetTransactionSnapshot());
		values[2] = Int64GetDatum(ids[i]);
		if (tools_execute("SELECT" CANDIDATE_SQL
						  " AND j.job_id OPERATOR(pg_catalog.=) $3",
						  3, types, values, NULL, SPI_OK_SELECT) > 0)
			claimed = ids[i];
		else
			release_job();
	}

	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	return claimed;
}

/*
 * Run one statement as a client's simple query runs it, at the top level of
 * its own transaction, so that a procedure may commit inside it.  The
 * statement's memory is in cxt, which outlives the procedure's commits.
 */
static void
run_statement(const char *sql, MemoryContext cxt)
{
	RawStmt    *parsetree;
	List	   *querytrees;
	List	   *plantrees;
	Portal		portal;
	DestReceiver *dest;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	MemoryContextSwitchTo(cxt);
	debug_query_string = sql;
	pgstat_report_activity(STATE_RUNNING, sql);

	parsetree = linitial_node(RawStmt, pg_parse_query(sql));
	PushActiveSnapshot(GetTransactionSnapshot());
#if PG_VERSION_NUM >= 150000
	querytrees = pg_analyze_and_rewrite_fixedparams(parsetree, sql, NULL, 0,
													NULL);
#else
	querytrees = pg_analyze_and_rewrite(parsetree, sql, NULL, 0, NULL);
#endif
	plantrees = pg_plan_queries(querytrees, sql, CURSOR_OPT_PARALLEL_OK, NULL);
	PopActiveSnapshot();

	portal = CreatePortal("", true, true);
	portal->visible = false;
	PortalDefineQuery(portal, NULL, sql, CMDTAG_CALL, plantrees, NULL);
	PortalStart(portal, NULL, 0, InvalidSnapshot);
	dest = CreateDestReceiver(DestNone);
#if PG_VERSION_NUM >= 180000
	(void) PortalRun(portal, FETCH_ALL, true, dest, dest, NULL);
#else
	(void) PortalRun(portal, FETCH_ALL, true, true, dest, dest, NULL);
#endif
	dest->rDestroy(dest);
	PortalDrop(portal, false);
	CommitTransactionCommand();

	debug_query_string = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Entry point of a worker.  Errors of a job are tools.start()'s to record;
 * the worker reports them to the server log, rolls back, and goes on.
 */
void
tools_worker_main(Datum arg)
{
	WorkerArgs	args;
	MemoryContext cxt;
	LOCKTAG		run_tag;
	volatile bool done = false;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
#if PG_VERSION_NUM >= 170000
	BackgroundWorkerInitializeConnectionByOid(args.database, args.role,
											  BGWORKER_BYPASS_ROLELOGINCHECK);
#else
	BackgroundWorkerInitializeConnectionByOid(args.database, args.role, 0);
#endif
	SetConfigOption("application_name",
					psprintf("tools run %lld", (long long) args.run_id),
					PGC_USERSET, PGC_S_SESSION);

	TOOLS_SET_LOCKTAG(run_tag, args.run_id, TOOLS_RUN_LOCK_SPACE);
	(void) LockAcquire(&run_tag, ShareLock, true, false);

	cxt = AllocSetContextCreate(TopMemoryContext, "tools worker",
								ALLOCSET_DEFAULT_SIZES);
	while (!done)
	{
		int64		job_id = 0;
		volatile bool in_job = false;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(TopMemoryContext);
		PG_TRY();
		{
			if (run_canceled(args.run_id))
				done = true;
			else
				job_id = claim_job(&args);
			if (job_id == 0)
				done = true;
			else
			{
				tried = tried == NULL ?
					MemoryContextAlloc(TopMemoryContext, sizeof(int64)) :
					repalloc(tried, sizeof(int64) * (ntried + 1));
				tried[ntried++] = job_id;
				in_job = true;
				run_statement(psprintf("CALL " TOOLS_SCHEMA ".start(%lld)",
									   (long long) job_id), cxt);
			}
		}
		PG_CATCH();
		{
			HOLD_INTERRUPTS();
			EmitErrorReport();
			AbortCurrentTransaction();
			FlushErrorState();
			debug_query_string = NULL;
			pgstat_report_activity(STATE_IDLE, NULL);
			RESUME_INTERRUPTS();

			/*
			 * A job's error is the job's: it is recorded, and the worker
			 * goes on.  An error in the worker's own bookkeeping (the
			 * extension dropped, its tables unreadable) would come again
			 * at each turn: the worker leaves.
			 */
			if (!in_job)
				done = true;
		}
		PG_END_TRY();

		release_job();
		MemoryContextReset(cxt);
	}
	proc_exit(0);
}

/*
 * Refuse what would keep a worker from connecting as the caller: a role
 * that cannot log in (before PostgreSQL 17, where a worker may connect as
 * one).
 */
static void
check_role(Oid role)
{
#if PG_VERSION_NUM < 170000
	HeapTuple	tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	bool		canlogin;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for role %u", role);
	canlogin = ((Form_pg_authid) GETSTRUCT(tuple))->rolcanlogin;
	ReleaseSysCache(tuple);
	if (!canlogin)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("workers cannot run as role \"%s\"",
						GetUserNameFromId(role, false)),
				 errdetail("A worker connects as the role that calls tools.launch(), and this role cannot log in."),
				 errhint("Call tools.launch() as a role with LOGIN, or run the jobs with CALL tools.start().")));
#endif
}

/*
 * The jobs of the run that workers may take, or an error if the run was
 * planned in this transaction: workers would not see it.
 */
static int64
jobs_to_run(int64 run_id, TimestampTz launched)
{
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;
	TransactionId xmin;

	values[0] = Int64GetDatum(run_id);
	values[1] = TimestampTzGetDatum(launched);
	tools_execute("SELECT xmin FROM " TOOLS_SCHEMA ".run"
				  " WHERE run_id OPERATOR(pg_catalog.=) $1",
				  1, types, values, NULL, SPI_OK_SELECT);
	xmin = DatumGetTransactionId(tools_result_value(1, &isnull));
	if (TransactionIdIsCurrentTransactionId(xmin))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("run %lld was planned in this transaction",
						(long long) run_id),
				 errdetail("Workers run in transactions of their own and cannot see it before it commits."),
				 errhint("Commit, then call tools.launch(%lld).",
						 (long long) run_id)));
	tools_execute("SELECT pg_catalog.count(*)" CANDIDATE_SQL,
				  2, types, values, NULL, SPI_OK_SELECT);
	return DatumGetInt64(tools_result_value(1, &isnull));
}

/*
 * Wait until each worker started holds its run's lock, or has stopped:
 * then tools.wait() cannot miss it.
 */
static void
wait_for_workers(BackgroundWorkerHandle **handles, int n, int64 run_id)
{
	int			i = 0;

	while (i < n)
	{
		pid_t		pid;
		BgwHandleStatus status = GetBackgroundWorkerPid(handles[i], &pid);
		bool		holds = false;
		uint64		j;

		if (status == BGWH_POSTMASTER_DIED)
			ereport(ERROR,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("the server stopped while workers were starting")));
		if (status == BGWH_STARTED)
		{
			uint64		nholders = select_holders(run_id, TOOLS_RUN_LOCK_SPACE,
												  "pid");

			for (j = 0; j < nholders; j++)
			{
				bool		isnull;

				holds = holds ||
					DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[j],
												SPI_tuptable->tupdesc, 1,
												&isnull)) == pid;
			}
		}
		if (status == BGWH_STOPPED || holds)
			i++;
		else
			nap(LAUNCH_POLL_MS);
	}
}

PG_FUNCTION_INFO_V1(tools_launch);

/*
 * tools.launch(run_id bigint DEFAULT NULL, workers integer DEFAULT 2)
 *		RETURNS integer
 */
Datum
tools_launch(PG_FUNCTION_ARGS)
{
	WorkerArgs	args;
	BackgroundWorker worker;
	BackgroundWorkerHandle **handles;
	int32		workers;
	int64		jobs;
	int			wanted;
	int			started;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("workers must not be NULL"),
				 errhint("Give the number of workers to start, or leave it out for 2.")));
	if (PG_GETARG_INT32(1) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("workers must be at least 1")));
	workers = PG_GETARG_INT32(1);

	memset(&args, 0, sizeof(args));
	args.database = MyDatabaseId;
	args.role = GetUserId();
	args.run_id = tools_connect_run(fcinfo, 0);
	args.launched = GetCurrentTimestamp();
	check_role(args.role);
	jobs = jobs_to_run(args.run_id, args.launched);
	if (jobs == 0)
	{
		ereport(NOTICE,
				(errmsg("run %lld has no job left to run",
						(long long) args.run_id),
				 errdetail("Its jobs are completed, or running, or failed since the last launch.")));
		SPI_finish();
		PG_RETURN_INT32(0);
	}
	wanted = (int) Min((int64) workers, jobs);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "tools");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "tools_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "tools worker for run %lld",
			 (long long) args.run_id);
	snprintf(worker.bgw_type, BGW_MAXLEN, "tools worker");
	worker.bgw_notify_pid = MyProcPid;
	memcpy(worker.bgw_extra, &args, sizeof(args));

	handles = palloc(sizeof(BackgroundWorkerHandle *) * wanted);
	for (started = 0; started < wanted; started++)
		if (!RegisterDynamicBackgroundWorker(&worker, &handles[started]))
			break;
	if (started == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a worker for run %lld",
						(long long) args.run_id),
				 errdetail("All background worker slots are in use (max_worker_processes is %d).",
						   max_worker_processes),
				 errhint("Wait for other workers to end, or raise max_worker_processes (a restart applies it); CALL tools.start() runs jobs without workers.")));
	if (started < wanted)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("started %d of %d workers for run %lld",
						started, wanted, (long long) args.run_id),
				 errdetail("All background worker slots are in use (max_worker_processes is %d).",
						   max_worker_processes),
				 errhint("The workers started take every job in turn; raise max_worker_processes for more at once.")));

	wait_for_workers(handles, started, args.run_id);
	SPI_finish();
	PG_RETURN_INT32(started);
}

PG_FUNCTION_INFO_V1(tools_cancel);

/*
 * tools.cancel(run_id bigint DEFAULT NULL) RETURNS integer
 *
 * Returns once the run's workers are gone.
 */
Datum
tools_cancel(PG_FUNCTION_ARGS)
{
	LOCKTAG		cancel_tag;
	int64		run_id;
	uint64		n;

	run_id = tools_connect_run(fcinfo, 0);

	/* Held to the end of the transaction: no worker claims a job. */
	TOOLS_SET_LOCKTAG(cancel_tag, run_id, TOOLS_CANCEL_LOCK_SPACE);
	(void) LockAcquire(&cancel_tag, ExclusiveLock, false, false);

	n = select_holders(run_id, TOOLS_RUN_LOCK_SPACE,
					   "pg_catalog.pg_cancel_backend(pid)");
	wait_for_holders(run_id, TOOLS_RUN_LOCK_SPACE);
	SPI_finish();
	PG_RETURN_INT32((int32) n);
}

PG_FUNCTION_INFO_V1(tools_wait);

/*
 * tools.wait(run_id bigint DEFAULT NULL) RETURNS SETOF tools.report
 *
 * Waits until no worker of the run is left and no process runs one of its
 * jobs or repairs the run, then returns the run's rows of tools.report,
 * read after the wait.
 */
Datum
tools_wait(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = tools_materialize(fcinfo, &desc);
	Oid			types[4] = {INT8OID, INT4OID, INT4OID, INT4OID};
	Datum		values[4];
	int64		run_id;
	uint64		i;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tools.wait() cannot run in a transaction of isolation level %s",
						XactIsoLevel == XACT_SERIALIZABLE ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errdetail("Its report must see what the jobs commit while it waits."),
				 errhint("Call it in a READ COMMITTED transaction.")));
	run_id = tools_connect_run(fcinfo, 0);

	values[0] = Int64GetDatum(run_id);
	values[1] = Int32GetDatum(TOOLS_RUN_LOCK_SPACE);
	values[2] = Int32GetDatum(TOOLS_JOB_LOCK_SPACE);
	values[3] = Int32GetDatum(TOOLS_REPAIRING_LOCK_SPACE);
	for (;;)
	{
		if (tools_execute("SELECT FROM " TOOLS_HELD_LOCKS_SQL " AS h"
						  " WHERE h.space OPERATOR(pg_catalog.=) ANY (ARRAY[$2, $4])"
						  " AND h.id OPERATOR(pg_catalog.=) $1"
						  " OR h.space OPERATOR(pg_catalog.=) $3"
						  " AND h.id OPERATOR(pg_catalog.=) ANY (SELECT job_id FROM "
						  TOOLS_SCHEMA ".job WHERE run_id OPERATOR(pg_catalog.=) $1)"
						  " LIMIT 1",
						  4, types, values, NULL, SPI_OK_SELECT) == 0)
			break;
		nap(WAIT_POLL_MS);
	}

	tools_execute("SELECT * FROM " TOOLS_SCHEMA ".report"
				  " WHERE run_id OPERATOR(pg_catalog.=) $1"
				  " ORDER BY target::pg_catalog.text",
				  1, types, values, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(store, SPI_tuptable->vals[i]);
	SPI_finish();
	return (Datum) 0;
}
