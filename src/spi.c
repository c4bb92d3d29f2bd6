/*-------------------------------------------------------------------------
 *
 * spi.c
 *		The one way the extension runs its own bookkeeping statements, and
 *		the helpers its SQL functions share.
 *
 * Statements on the tools tables and the catalogs must succeed; anything
 * but the expected SPI result is a bug, reported with the statement.
 *
 * IDENTIFICATION
 *		src/spi.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lock.h"
#include "utils/tuplestore.h"

#include "tools.h"

uint64
tools_execute(const char *sql, int nargs, Oid *types, Datum *values,
			  const char *nulls, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls,
										   false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute_with_args failed: %s (%s)",
			 SPI_result_code_string(rc), sql);
	return SPI_processed;
}

/* Run a kept plan; returns SPI_processed. */
uint64
tools_execute_plan(SPIPlanPtr plan, ParamListInfo params, bool read_only,
				   int expected)
{
	int			rc = SPI_execute_plan_with_paramlist(plan, params, read_only, 0);

	if (rc == SPI_OK_REWRITTEN && expected == SPI_OK_INSERT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a rule of the target turns the job's INSERT into another statement"),
				 errdetail("The rows would not be written where the job counts them."),
				 errhint("Drop the target's unconditional INSTEAD rule, or copy into another table.")));
	if (rc != expected)
		elog(ERROR, "SPI_execute_plan_with_paramlist failed: %s",
			 SPI_result_code_string(rc));
	return SPI_processed;
}

/* Column col of the first row of the last result. */
Datum
tools_result_value(int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col,
						 isnull);
}

/* Set up a materialized result; returns the tuplestore to fill. */
Tuplestorestate *
tools_materialize(FunctionCallInfo fcinfo, TupleDesc *desc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcxt;
	Tuplestorestate *store;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	*desc = CreateTupleDescCopy(*desc);
	store = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(oldcxt);

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = *desc;
	return store;
}

/*
 * Connect to SPI and find the run named by argument argno of a function:
 * the latest run when it is NULL.  The run must exist.
 */
int64
tools_connect_run(FunctionCallInfo fcinfo, int argno)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	char		nulls[1] = {' '};
	bool		isnull;
	Datum		d;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (PG_ARGISNULL(argno))
		nulls[0] = 'n';
	else
		values[0] = PG_GETARG_DATUM(argno);
	tools_execute("SELECT pg_catalog.max(run_id) FROM " TOOLS_SCHEMA ".run"
				  " WHERE $1 IS NULL OR run_id OPERATOR(pg_catalog.=) $1",
				  1, types, values, nulls, SPI_OK_SELECT);
	d = tools_result_value(1, &isnull);
	if (isnull && nulls[0] == 'n')
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no run has been planned"),
				 errhint("tools.run() plans a run.")));
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("run %lld does not exist",
						(long long) DatumGetInt64(values[0])),
				 errhint("tools.run lists the runs.")));
	return DatumGetInt64(d);
}

/* Whether a procedure was called where it may commit. */
bool
tools_called_nonatomic(FunctionCallInfo fcinfo)
{
	return fcinfo->context != NULL && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
}

/* Connect to SPI where the caller may commit. */
void
tools_connect_nonatomic(void)
{
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
}

/* Commit the current transaction and start the next one. */
void
tools_commit(void)
{
	SPI_commit();
#if PG_VERSION_NUM < 150000
	SPI_start_transaction();
#endif
}

/*
 * Commit the current transaction, start the next one, and close the SPI
 * connection: what SPI allocated for the step goes with it.
 */
void
tools_commit_and_finish(void)
{
	tools_commit();
	SPI_finish();
}

/*
 * In a PG_CATCH block: raise the error being handled again, told the way
 * the extension tells it where it has code sqlerrcode: with message in
 * place of its own, and detail and hint where it has none (each where not
 * NULL).  Any other error is raised again as it was.  The error is copied
 * in cxt, which outlives the handling.
 */
void
tools_rethrow_told(MemoryContext cxt, int sqlerrcode, const char *message,
				   const char *detail, const char *hint)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	if (edata->sqlerrcode != sqlerrcode)
		PG_RE_THROW();
	FlushErrorState();
	if (message != NULL)
		edata->message = pstrdup(message);
	if (detail != NULL && edata->detail == NULL)
		edata->detail = pstrdup(detail);
	if (hint != NULL && edata->hint == NULL)
		edata->hint = pstrdup(hint);
	ReThrowError(edata);
}

/* Take the job's session lock, or fail naming the process that holds it. */
void
tools_lock_job(int64 job_id, LOCKTAG *tag)
{
	TOOLS_SET_LOCKTAG(*tag, job_id, TOOLS_JOB_LOCK_SPACE);
	if (LockAcquire(tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		int			pid;

		tools_connect_nonatomic();
		pid = tools_lock_holder(job_id, TOOLS_JOB_LOCK_SPACE);
		SPI_finish();

		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("job %lld is already running", (long long) job_id),
				 pid != 0 ? errdetail("Process %d is running it.", pid) : 0,
				 errhint("Wait for that call to end; if it fails or is stopped, a new call resumes the job.")));
	}
}

/*
 * Refuse to write into the job's target while another process runs a job
 * of it (tools.start() or tools.repair(), which hold its lock), other than
 * this one and the jobs of run except_run (0: none excepted), and, where
 * repairing, the jobs of this job's run that other repairs of that run
 * hold (each writes its own job's range): the error says why (a clause)
 * and which call to make again.  The caller is connected to SPI and holds
 * its own job's lock, so that of two calls looking at once, at least one
 * sees the other.
 */
void
tools_check_target_writer(const ToolsJob *job, int64 except_run,
						  bool repairing, const char *why, const char *call)
{
	Oid			types[7] = {OIDOID, INT8OID, INT8OID, INT4OID, BOOLOID, INT8OID, INT4OID};
	Datum		values[7];
	bool		isnull;

	values[0] = ObjectIdGetDatum(job->target);
	values[1] = Int64GetDatum(job->job_id);
	values[2] = Int64GetDatum(except_run);
	values[3] = Int32GetDatum(TOOLS_JOB_LOCK_SPACE);
	values[4] = BoolGetDatum(repairing);
	values[5] = Int64GetDatum(job->run_id);
	values[6] = Int32GetDatum(TOOLS_REPAIRING_LOCK_SPACE);
	if (tools_execute("WITH held AS " TOOLS_HELD_LOCKS_SQL
					  " SELECT j.job_id, j.run_id, h.pid"
					  " FROM " TOOLS_SCHEMA ".job AS j"
					  " JOIN " TOOLS_SCHEMA ".config AS c"
					  " ON c.config_id OPERATOR(pg_catalog.=) j.config_id"
					  " JOIN held AS h ON h.space OPERATOR(pg_catalog.=) $4"
					  " AND h.id OPERATOR(pg_catalog.=) j.job_id"
					  " WHERE c.target::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
					  " AND j.job_id OPERATOR(pg_catalog.<>) $2"
					  " AND j.run_id OPERATOR(pg_catalog.<>) $3"
					  " AND NOT ($5 AND j.run_id OPERATOR(pg_catalog.=) $6 AND"
					  TOOLS_REPAIRING_SQL("h.pid", "$6", "$7") ")"
					  " ORDER BY j.job_id LIMIT 1",
					  7, types, values, NULL, SPI_OK_SELECT) > 0)
	{
		int64		other = DatumGetInt64(tools_result_value(1, &isnull));

		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("target %s is being written by job %lld of run %lld",
						job->target_name, (long long) other,
						(long long) DatumGetInt64(tools_result_value(2, &isnull))),
				 errdetail("Process %d is running that job; %s.",
						   DatumGetInt32(tools_result_value(3, &isnull)), why),
				 errhint("Wait for job %lld to end, or stop it, then call %s again.",
						 (long long) other, call)));
	}
	SPI_freetuptable(SPI_tuptable);
}
