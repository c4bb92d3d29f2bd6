/*-------------------------------------------------------------------------
 *
 * copy.c
 *		tools.start(job_id): run or resume one job.
 *
 * A job moves rows from its source into its target in key ranges, within
 * its part of the key when its configuration is cut into parts.  Each range
 * is copied and recorded in tools.job (lastkey, rows, elapsed, state) in one
 * transaction, committed before the next range begins: whatever stops the
 * job, the target holds exactly the committed ranges, and the next call
 * starts above lastkey.
 *
 * Each step runs in a subtransaction.  When it fails, the step is rolled
 * back, the job is marked failed with the error's message in a transaction
 * that commits, and the original error is raised again for the caller.
 *
 * A session-level advisory lock keyed by the job id keeps two calls from
 * running one job; it outlives the per-batch commits and goes with the
 * session if the backend dies.  The first step of a call locks the job's
 * tools.run row, which orders the starts of a run's jobs: the first job of
 * a run to start on a target empties it when the run truncates that target,
 * in the transaction that records the start, so no sibling can have written
 * into it yet and none will empty it again.
 *
 * Jobs of different runs never write into one target together: a job checks,
 * holding its own lock, that no job of another run holds one on its target,
 * and that no later run has started there.
 *
 * IDENTIFICATION
 *		src/copy.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "tools.h"

/* The statements of a job, each with and without a lower end. */
typedef enum JobPlan
{
	PLAN_NEXT,					/* upper end of a full batch */
	PLAN_LAST,					/* upper end of the last batch */
	PLAN_COPY,					/* copy a key range */
	PLAN_REMOTE,				/* read a key range, planned for its own
								 * range (tools_remote_batch()) */
	PLAN_SPAN,					/* smallest and largest key left, and rows */
	NUM_PLANS
} JobPlan;

/* A call of tools.start(): the job and where its copy stands. */
typedef struct CopyState
{
	ToolsJob	job;
	MemoryContext cxt;			/* lives for the call, across commits */
	MemoryContext scratch;		/* reset after each step */
	SPIPlanPtr	plans[NUM_PLANS][2];	/* second index: "has a lower end" */
	bool		has_last;		/* last is the lower end of the next batch */
	Datum	   *last;			/* its key values, in keycxt */
	MemoryContext keycxt;		/* emptied when last moves */
	Datum		part_lower;		/* the job's part of the key range */
	Datum		part_upper;
	bool		has_next;		/* the upper end of the next batch is known: */
	bool		next_found;		/* there is one, */
	Datum	   *next;			/* its key values, in nextcxt */
	MemoryContext nextcxt;
	bool		done;
	bool		copied_all;		/* a job without a key has completed */
	bool		nothing_seen;	/* a transaction of the call found nothing
								 * left to copy (nothing_left()) */
	bool		windows;		/* batches are key windows (next_window()) */
	bool		span_known;		/* lo and hi are known: */
	int64		lo;				/* the smallest key, at the call's start */
	int64		hi;				/* the largest key, as last seen */
	int64		width;			/* of the next window */
	bool		from_start;		/* its run empties the target: no position */
	bool		restoring;		/* deferred indexes are being built again */
	LOCKTAG		target_lock;	/* held while target_locked */
	bool		target_locked;
	TimestampTz mark;			/* elapsed time is counted up to here */
} CopyState;

typedef void (*CopyStep) (CopyState *st);

/* The time since the last mark, as an interval; moves the mark. */
static void
elapsed_since(CopyState *st, Interval *span)
{
	TimestampTz now = GetCurrentTimestamp();

	memset(span, 0, sizeof(Interval));
	span->time = now - st->mark;
	st->mark = now;
}


/* Find the job's run; the job must exist. */
static void
load_job(CopyState *st, int64 job_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job_id)};
	bool		isnull;

	st->job.job_id = job_id;
	tools_connect_nonatomic();
	if (tools_execute("SELECT run_id FROM " TOOLS_SCHEMA ".job"
					  " WHERE job_id OPERATOR(pg_catalog.=) $1",
					  1, types, values, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("job %lld does not exist", (long long) job_id),
				 errhint("tools.run() plans jobs; tools.job lists them.")));
	st->job.run_id = DatumGetInt64(tools_result_value(1, &isnull));
	SPI_finish();
}

/* Record the failure in a transaction of its own, then raise the error. */
static void
fail_job(CopyState *st, ErrorData *edata)
{
	Oid			types[3] = {INT8OID, TEXTOID, INTERVALOID};
	Datum		values[3];
	Interval	span;

	elapsed_since(st, &span);
	values[0] = Int64GetDatum(st->job.job_id);
	values[1] = CStringGetTextDatum(edata->message ? edata->message : "");
	values[2] = IntervalPGetDatum(&span);
	tools_execute("UPDATE " TOOLS_SCHEMA ".job SET state = 'failed', error = $2,"
				  " elapsed = elapsed OPERATOR(pg_catalog.+) $3,"
				  " updated = pg_catalog.clock_timestamp()"
				  " WHERE job_id OPERATOR(pg_catalog.=) $1",
				  3, types, values, NULL, SPI_OK_UPDATE);
	tools_commit_and_finish();
	ReThrowError(edata);
}

/*
 * Run one step in a transaction of its own, which commits: a subtransaction
 * inside it holds the step, so that on error the step leaves nothing behind
 * and the job is failed.
 *
 * Memory stays flat however many batches a job runs: each step has its own
 * SPI connection, closed after the commit, and runs, commits and releases
 * its subtransaction in a scratch context reset after the step.  What a
 * step keeps for the next ones it allocates in st->cxt.
 */
static void
run_step(CopyState *st, CopyStep step)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(st->scratch);
	ResourceOwner oldowner = CurrentResourceOwner;

	tools_connect_nonatomic();
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(st->scratch);
	PG_TRY();
	{
		step(st);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(st->scratch);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		tools_guard_source(NULL);
		MemoryContextSwitchTo(st->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(st->scratch);
		CurrentResourceOwner = oldowner;
		fail_job(st, edata);
	}
	PG_END_TRY();
	tools_commit_and_finish();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(st->scratch);
}

/*
 * Read the job's configuration (the job keeps its run, not its config), its
 * part of the key range and its position (lastkey, 0 for none, in the
 * step's memory), and whether it has completed.  Returns whether the job has
 * never started.
 */
static bool
read_config(CopyState *st, Datum *lastkey, bool *completed)
{
	ToolsJob   *job = &st->job;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job->job_id)};
	TupleDesc	desc;
	HeapTuple	row;
	bool		isnull;
	bool		first;
	Datum		d;

	if (tools_execute("SELECT " TOOLS_JOB_COLUMNS ", j.lastkey, j.ts IS NULL,"
					  " j.state OPERATOR(pg_catalog.=) 'completed'"
					  TOOLS_JOB_FROM
					  " WHERE j.job_id OPERATOR(pg_catalog.=) $1",
					  1, types, values, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("configuration of job %lld does not exist",
						(long long) job->job_id),
				 errdetail("Its tools.config row was deleted after the run was planned."),
				 errhint("Plan a new run with tools.run().")));

	desc = SPI_tuptable->tupdesc;
	row = SPI_tuptable->vals[0];
	tools_job_from_row(job, row, desc, st->cxt);
	d = SPI_getbinval(row, desc, TOOLS_JOB_NCOLUMNS + 1, &isnull);
	*lastkey = isnull ? (Datum) 0 : datumCopy(d, false, -1);
	first = DatumGetBool(SPI_getbinval(row, desc, TOOLS_JOB_NCOLUMNS + 2,
									   &isnull));
	*completed = DatumGetBool(SPI_getbinval(row, desc, TOOLS_JOB_NCOLUMNS + 3,
											&isnull));
	SPI_freetuptable(SPI_tuptable);
	return first;
}

/*
 * Prepare a statement and keep its plan past the commits; cursor_options
 * may ask for a plan of each execution's parameters.
 */
static SPIPlanPtr
keep_plan(const ToolsJob *job, const char *sql, int cursor_options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, NUM_PARAMS(job),
										  tools_param_types(job),
										  cursor_options);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * Plan the job's statements once.  Each plan is kept as soon as it exists,
 * so that free_plans() finds only kept plans, whichever prepare fails.
 */
static void
prepare_plans(CopyState *st)
{
	ToolsJob   *job = &st->job;
	int			lower;

	for (lower = 0; lower <= 1; lower++)
	{
		if (st->windows)
			st->plans[PLAN_SPAN][lower] =
				keep_plan(job, tools_span_sql(job, lower), 0);
		else if (job->batchsize > 0 && job->nkeys > 0)
			st->plans[PLAN_NEXT][lower] =
				keep_plan(job, tools_bound_sql(job, lower, false), 0);
		if (job->nkeys > 0 && !st->windows)
			st->plans[PLAN_LAST][lower] =
				keep_plan(job, tools_bound_sql(job, lower, true), 0);
		st->plans[PLAN_COPY][lower] =
			keep_plan(job, job->bulk ? tools_select_sql(job, lower) :
					  tools_copy_sql(job, lower), 0);
		if (job->remote != NULL)
			st->plans[PLAN_REMOTE][lower] =
				keep_plan(job, tools_select_sql(job, lower),
						  CURSOR_OPT_CUSTOM_PLAN);
	}
}

static void
free_plans(CopyState *st)
{
	int			i;
	int			lower;

	for (i = 0; i < NUM_PLANS; i++)
		for (lower = 0; lower <= 1; lower++)
		{
			if (st->plans[i][lower])
				SPI_freeplan(st->plans[i][lower]);
			st->plans[i][lower] = NULL;
		}
}

/*
 * Over a foreign source, a batch's bound statement must sort on the remote
 * server for its OFFSET and LIMIT to go there too.  The planner sorts
 * locally when it expects few rows (as with a condition it cannot estimate),
 * and then every batch fetches the rest of the table: within the job's
 * transactions, sorting locally is the last resort.
 */
static void
prefer_remote_sort(CopyState *st)
{
	if (st->job.source_foreign)
		tools_execute("SET LOCAL enable_sort TO off", 0, NULL, NULL, NULL,
					  SPI_OK_UTILITY);
}

/*
 * Warn when a foreign source cannot keep a batch to its own rows: its
 * wrapper leaves the key order or the key range to this server, so every
 * batch fetches the rest of the table, and the job's cost grows with the
 * square of its size.
 */
static void
check_pushdown(CopyState *st)
{
	bool		next;
	bool		copy;

	if (!st->job.source_foreign)
		return;
	next = st->plans[PLAN_NEXT][1] != NULL &&
		tools_plan_reads_all(st->plans[PLAN_NEXT][1]);
	copy = st->job.nkeys > 0 && tools_plan_reads_all(st->plans[PLAN_COPY][1]);
	if (!next && !copy && st->plans[PLAN_NEXT][1] != NULL &&
		st->job.source_fdw != NULL &&
		strcmp(st->job.source_fdw, "mysql_fdw_handler") == 0)
		ereport(WARNING,
				(errmsg("each batch of job %lld sorts all the remaining rows of %s on the remote server",
						(long long) st->job.job_id, st->job.source_name),
				 errdetail("mysql_fdw sends ORDER BY on the key as \"key IS NULL, key\", which MySQL and MariaDB sort instead of reading the key's index."),
				 errhint("Copy this source in one batch (batchsize NULL) or in larger batches, or cut it into parts, so that each job sorts only its own range.")));
	if (!next && !copy)
		return;
	ereport(WARNING,
			(errmsg("each batch of job %lld reads all the remaining rows of %s",
					(long long) st->job.job_id, st->job.source_name),
			 next ?
			 errdetail("Its foreign data wrapper does not sort by the key on the remote server: this server sorts the rows itself.") :
			 errdetail("Its foreign data wrapper does not take the key range to the remote server: this server filters the rows itself."),
			 errhint("Copy this source in one batch (batchsize NULL) or in larger batches, or through a wrapper that pushes ORDER BY, LIMIT and WHERE on the key down to the remote server.")));
}

/*
 * The parameters of a statement: the lower end of a batch (NULL for none),
 * its upper end (NULL when the statement has none) and the job's part.
 */
static ParamListInfo
range_params(CopyState *st, const Datum *lower, const Datum *upper)
{
	ToolsJob   *job = &st->job;
	ParamListInfo params = tools_params(job, st->part_lower, st->part_upper);
	int			i;

	for (i = 0; i < job->nkeys; i++)
	{
		if (lower != NULL)
		{
			params->params[PARAM_LAST(job, i)].value = lower[i];
			params->params[PARAM_LAST(job, i)].isnull = false;
		}
		if (upper != NULL)
		{
			params->params[PARAM_UPPER(job, i)].value = upper[i];
			params->params[PARAM_UPPER(job, i)].isnull = false;
		}
	}
	return params;
}

/* The parameters of the next batch's statements, up to upper. */
static ParamListInfo
batch_params(CopyState *st, const Datum *upper)
{
	return range_params(st, st->has_last ? st->last : NULL, upper);
}

/*
 * Key windows (tools_use_windows()): a batch is key > a AND key <= b, with
 * no ORDER BY and no LIMIT, and b is a plus a width that follows the
 * density of the rows the previous window held (batchsize rows where the
 * density holds).  The span of the keys left, and their number, come from
 * one aggregate statement that the wrapper sends whole, at the call's
 * start and again whenever the windows pass the largest key seen: a job
 * completes only when no key is left above its position.  The windows are
 * contiguous, so which rows a batch copies does not depend on their width.
 */
static bool
use_windows(const ToolsJob *job)
{
	return job->batchsize > 0 && tools_use_windows(job);
}

/*
 * The upper end of the next window, into upper, and the width of key values
 * it spans, into span; false when no key is left above the position.
 */
static bool
next_window(CopyState *st, Datum *upper, double *span)
{
	ToolsJob   *job = &st->job;
	int64		last = st->has_last ? tools_key_int64(job, st->last) : 0;
	int64		end;

	if (!st->span_known || (st->has_last && last >= st->hi))
	{
		int64		lo;
		int64		width;

		if (tools_execute_plan(st->plans[PLAN_SPAN][st->has_last],
							   batch_params(st, NULL), true, SPI_OK_SELECT) == 0)
			return false;
		tools_window_span(job, job->batchsize, &lo, &st->hi, &width);
		if (!st->span_known)
		{
			st->lo = lo;
			st->width = width;
			st->span_known = true;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	if (!tools_window_end(st->lo, st->has_last, last, st->width, &end))
		end = st->hi;
	end = Min(end, st->hi);
	*span = st->has_last ? (double) end - last : (double) end - st->lo + 1;
	upper[0] = tools_int64_key(job, end);
	return true;
}

/*
 * Find the upper end of the next batch with a bound statement, into upper
 * (in the step's memory); false when no row is left for it.
 */
static bool
find_upper(CopyState *st, JobPlan which, Datum *upper)
{
	ToolsJob   *job = &st->job;
	bool		found;
	int			i;

	found = tools_execute_plan(st->plans[which][st->has_last],
							   batch_params(st, NULL), true, SPI_OK_SELECT) > 0;
	for (i = 0; found && i < job->nkeys; i++)
	{
		bool		isnull;
		Datum		d = tools_result_value(i + 1, &isnull);

		upper[i] = datumCopy(d, job->keys[i].typbyval, job->keys[i].typlen);
	}
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/* Make values the lower end of the next batch. */
static void
set_last(CopyState *st, const Datum *values)
{
	ToolsJob   *job = &st->job;
	MemoryContext oldcxt;
	int			i;

	MemoryContextReset(st->keycxt);
	oldcxt = MemoryContextSwitchTo(st->keycxt);
	st->last = palloc(sizeof(Datum) * job->nkeys);
	for (i = 0; i < job->nkeys; i++)
		st->last[i] = datumCopy(values[i], job->keys[i].typbyval,
								job->keys[i].typlen);
	MemoryContextSwitchTo(oldcxt);
	st->has_last = true;
}

/* Make a position kept in tools.job.lastkey the lower end of the next batch. */
static void
set_last_from_array(CopyState *st, Datum lastkey)
{
	Datum	   *values = palloc(sizeof(Datum) * st->job.nkeys);

	tools_key_from_array(&st->job, lastkey, values);
	set_last(st, values);
}

/* Refuse a job whose caller has a right on no column of a relation. */
static void
check_right(const ToolsJob *job, Oid relid, AclMode mode, const char *what,
			const char *role, const char *relation)
{
	Oid			user = GetUserId();

	if (pg_class_aclcheck(relid, user, mode) == ACLCHECK_OK ||
		(mode != ACL_TRUNCATE &&
		 pg_attribute_aclcheck_all(relid, user, mode, ACLMASK_ANY) == ACLCHECK_OK))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s %s %s", what, role, relation),
			 errdetail("Job %lld runs as role \"%s\".", (long long) job->job_id,
					   GetUserNameFromId(user, false)),
			 errhint("GRANT %s ON %s TO \"%s\", or run the job as a role that has it.",
					 mode == ACL_SELECT ? "SELECT" :
					 mode == ACL_INSERT ? "INSERT" : "TRUNCATE",
					 relation, GetUserNameFromId(user, false))));
}

/*
 * Check the caller's rights on the source and target columns the copy uses
 * before the target is emptied: first whether it may read the source and
 * write into the target at all, each named, then, with EXPLAIN, each column
 * as the copy will use it, without running it.
 */
static void
check_rights(CopyState *st)
{
	ToolsJob   *job = &st->job;
	Datum	   *values = palloc0(sizeof(Datum) * Max(NUM_PARAMS(job), 1));
	char	   *nulls = palloc(Max(NUM_PARAMS(job), 1));

	check_right(job, job->source, ACL_SELECT, "read", "source", job->source_name);
	check_right(job, job->target, ACL_INSERT, "write into", "target",
				job->target_name);
	if (job->trunc)
		check_right(job, job->target, ACL_TRUNCATE, "empty", "target",
					job->target_name);

	memset(nulls, 'n', NUM_PARAMS(job));
	tools_execute(psprintf("EXPLAIN %s", tools_copy_sql(job, true)),
				  NUM_PARAMS(job), tools_param_types(job), values, nulls,
				  SPI_OK_UTILITY);
}

/*
 * Refuse rows that no key range reaches, before any row moves.  They belong
 * to the part of a split configuration that is open below: its job counts
 * them in the whole source.
 */
static void
check_null_keys(CopyState *st)
{
	ToolsJob   *job = &st->job;
	bool		nullable = false;
	bool		isnull;
	int64		count;
	int			i;

	for (i = 0; i < job->nkeys; i++)
		nullable = nullable || !job->keys[i].not_null;
	if (!nullable || job->part_lower != NULL)
		return;
	tools_execute(tools_null_keys_sql(job), 0, NULL, NULL, NULL, SPI_OK_SELECT);
	count = DatumGetInt64(tools_result_value(1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	if (count > 0)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 job->nkeys == 1 ?
				 errmsg_plural("source %s has %lld row whose key %s is NULL",
							   "source %s has %lld rows whose key %s is NULL",
							   (unsigned long) count,
							   job->source_name, (long long) count,
							   job->keys[0].name) :
				 errmsg_plural("source %s has %lld row with a NULL in key (%s)",
							   "source %s has %lld rows with a NULL in key (%s)",
							   (unsigned long) count,
							   job->source_name, (long long) count,
							   tools_key_list(job, "")),
				 errdetail("Batches follow key ranges, and no range holds a NULL key: these rows would be left behind."),
				 errhint("Give these rows a key in the source, or leave them out knowingly with the condition \"%s\".",
						 tools_key_not_null(job))));
}

/*
 * Refuse to write into a target that another run owns: a job of another run
 * that is running on it now (it holds its job lock), or a job of a later run
 * that has started on it, which superseded this run there.  Two runs on one
 * target would copy rows twice, or empty it under each other.
 *
 * The caller holds its own job lock before it looks, so of two jobs of
 * different runs starting together at least one sees the other.
 */
static void
check_target_owner(CopyState *st)
{
	Oid			types[2] = {INT8OID, OIDOID};
	Datum		values[2];
	bool		isnull;
	int64		other_job;
	int64		other_run;

	tools_check_target_writer(&st->job, st->job.run_id, false,
							  "two runs writing one target would copy rows twice",
							  psprintf("tools.start(%lld)", (long long) st->job.job_id));

	values[0] = Int64GetDatum(st->job.run_id);
	values[1] = ObjectIdGetDatum(st->job.target);
	if (tools_execute("SELECT j.job_id, j.run_id"
					  " FROM " TOOLS_SCHEMA ".job AS j"
					  " JOIN " TOOLS_SCHEMA ".config AS c"
					  " ON c.config_id OPERATOR(pg_catalog.=) j.config_id"
					  " WHERE c.target::pg_catalog.oid OPERATOR(pg_catalog.=) $2"
					  " AND j.run_id OPERATOR(pg_catalog.>) $1 AND j.ts IS NOT NULL"
					  " ORDER BY j.job_id LIMIT 1",
					  2, types, values, NULL, SPI_OK_SELECT) == 0)
		return;
	other_job = DatumGetInt64(tools_result_value(1, &isnull));
	other_run = DatumGetInt64(tools_result_value(2, &isnull));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("run %lld has been superseded on target %s by run %lld",
					(long long) st->job.run_id, st->job.target_name,
					(long long) other_run),
			 errdetail("Job %lld of run %lld has started on that target; resuming job %lld would copy rows twice.",
					   (long long) other_job, (long long) other_run,
					   (long long) st->job.job_id),
			 errhint("Run or resume the jobs of run %lld instead.",
					 (long long) other_run)));
}

/*
 * On the job's first start: empty the target if this run truncates it and
 * no job of the run has started on it yet, and otherwise continue where
 * earlier runs of this configuration stopped in the same part of the key
 * range: at the position of the latest job that has one.  A job starts at
 * the position its predecessor reached, so the latest is the furthest.
 */
static void
prepare_target(CopyState *st)
{
	Oid			types[2] = {INT8OID, OIDOID};
	Datum		values[2];
	Oid			part_types[4] = {INT8OID, INT8OID, TEXTOID, TEXTOID};
	Datum		part_values[4];
	char		part_nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	bool		truncates;
	bool		started;

	values[0] = Int64GetDatum(st->job.run_id);
	values[1] = ObjectIdGetDatum(st->job.target);
	tools_execute("SELECT pg_catalog.bool_or(c.trunc),"
				  " pg_catalog.bool_or(j.ts IS NOT NULL)"
				  " FROM " TOOLS_SCHEMA ".job AS j JOIN " TOOLS_SCHEMA ".config AS c"
				  " ON c.config_id OPERATOR(pg_catalog.=) j.config_id"
				  " WHERE j.run_id OPERATOR(pg_catalog.=) $1"
				  " AND c.target::pg_catalog.oid OPERATOR(pg_catalog.=) $2",
				  2, types, values, NULL, SPI_OK_SELECT);
	truncates = DatumGetBool(tools_result_value(1, &isnull));
	started = DatumGetBool(tools_result_value(2, &isnull));
	SPI_freetuptable(SPI_tuptable);

	if (truncates)
	{
		if (!started)
			tools_execute(psprintf("TRUNCATE %s", st->job.target_name),
						  0, NULL, NULL, NULL, SPI_OK_UTILITY);
		/* The target is emptied: no position planned for the job holds. */
		st->has_last = false;
		st->from_start = true;
		return;
	}

	part_values[0] = Int64GetDatum(st->job.config_id);
	part_values[1] = Int64GetDatum(st->job.job_id);
	if (st->job.part_lower != NULL)
		part_values[2] = CStringGetTextDatum(st->job.part_lower);
	else
		part_nulls[2] = 'n';
	if (st->job.part_upper != NULL)
		part_values[3] = CStringGetTextDatum(st->job.part_upper);
	else
		part_nulls[3] = 'n';

	tools_execute("SELECT lastkey, pkey, job_id FROM " TOOLS_SCHEMA ".job"
				  " WHERE config_id OPERATOR(pg_catalog.=) $1"
				  " AND job_id OPERATOR(pg_catalog.<>) $2 AND lastkey IS NOT NULL"
				  " AND (lower OPERATOR(pg_catalog.=) $3 OR lower IS NULL AND $3 IS NULL)"
				  " AND (upper OPERATOR(pg_catalog.=) $4 OR upper IS NULL AND $4 IS NULL)"
				  " ORDER BY job_id DESC LIMIT 1",
				  4, part_types, part_values, part_nulls, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		tools_check_key_kept(&st->job,
							 SPI_getvalue(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 2),
							 psprintf("Job %s",
									  SPI_getvalue(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 3)));
		set_last_from_array(st, tools_result_value(1, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * A position as the parameters that record it in tools.job: lastkey (text[])
 * and lastseq (bigint, for an integer key); NULL when position is NULL.
 */
static void
position_params(CopyState *st, const Datum *position, Oid *types,
				Datum *values, char *nulls)
{
	types[0] = TEXTARRAYOID;
	types[1] = INT8OID;
	nulls[0] = nulls[1] = 'n';
	values[0] = values[1] = (Datum) 0;
	if (position == NULL)
		return;
	values[0] = tools_key_array(&st->job, position);
	nulls[0] = ' ';
	if (st->job.integer_key)
	{
		values[1] = Int64GetDatum(tools_key_int64(&st->job, position));
		nulls[1] = ' ';
	}
}

/*
 * How the job's batches read and write: with COPY on a postgres_fdw
 * source's server, and by bulk insertion into a target that allows it
 * (with one bulk insert state for the call); otherwise through the source's
 * relation, and with INSERT.  Said at DEBUG1.
 */
static void
choose_paths(ToolsJob *job)
{
	const char *obstacle = tools_bulk_obstacle(job);

	job->bulk = obstacle == NULL;
	if (job->bulk)
		job->bistate = GetBulkInsertState();
	tools_remote_describe(job);

	/* A job that reads with COPY said how it writes. */
	if (job->remote == NULL && job->bulk)
		elog(DEBUG1, "tools job %lld writes into %s by bulk insertion",
			 (long long) job->job_id, job->target_name);
	else if (job->remote == NULL)
		elog(DEBUG1, "tools job %lld writes into %s with INSERT: %s",
			 (long long) job->job_id, job->target_name, obstacle);
}

/*
 * First step of a call: lock the run's row to order the starts of its
 * jobs, check the job against the catalogs, plan it, drop the target's
 * secondary indexes if it defers them (unless it has completed), prepare
 * the target on a first start, and record the job as running.
 */
static void
begin_job(CopyState *st)
{
	ToolsJob   *job = &st->job;
	Oid			types[4] = {INT8OID, InvalidOid, InvalidOid, BOOLOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		first;
	bool		completed;
	Datum		lastkey;

	values[0] = Int64GetDatum(job->run_id);
	tools_execute("SELECT FROM " TOOLS_SCHEMA ".run"
				  " WHERE run_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				  1, types, values, NULL, SPI_OK_SELECT);

	first = read_config(st, &lastkey, &completed);
	MemoryContextSwitchTo(st->cxt);
	tools_describe_job(job);
	if (job->part_lower != NULL)
		st->part_lower = tools_key_value(&job->keys[0], job->part_lower);
	if (job->part_upper != NULL)
		st->part_upper = tools_key_value(&job->keys[0], job->part_upper);
	if (lastkey != (Datum) 0)
		set_last_from_array(st, lastkey);

	/*
	 * Before anything that waits for a lock on the target: a job of another
	 * run waiting there holds its job's lock, and sees this one.
	 */
	check_target_owner(st);

	/*
	 * The first job of the run to start drops the foreign keys of the
	 * run's targets that defer them; then the paths are chosen.
	 */
	if (first)
		tools_defer_constraints(job);
	MemoryContextSwitchTo(st->cxt);
	choose_paths(job);
	tools_check_source(job);
	prefer_remote_sort(st);
	st->windows = use_windows(job);
	if (st->windows)
		elog(DEBUG1, "tools job %lld reads %s in windows of key values, without ORDER BY",
			 (long long) job->job_id, job->source_name);
	prepare_plans(st);
	check_pushdown(st);
	check_rights(st);
	check_null_keys(st);

	/* A job without a key that completed has copied everything. */
	st->copied_all = job->nkeys == 0 && completed;

	if (job->defer_indexes && !completed)
		tools_defer_indexes(job);
	if (first)
		prepare_target(st);

	values[0] = Int64GetDatum(job->job_id);
	position_params(st, st->has_last ? st->last : NULL, &types[1], &values[1],
					&nulls[1]);
	values[3] = BoolGetDatum(st->from_start);
	tools_execute("UPDATE " TOOLS_SCHEMA ".job SET state = 'running', error = NULL,"
				  " ts = COALESCE(ts, LOCALTIMESTAMP), rate = NULL,"
				  " updated = pg_catalog.clock_timestamp(),"
				  " lastkey = CASE WHEN $4 THEN NULL ELSE COALESCE($2, lastkey) END,"
				  " lastseq = CASE WHEN NOT $4 THEN COALESCE($3, lastseq)"
				  " WHEN lastseq IS NOT NULL THEN 0 END"
				  " WHERE job_id OPERATOR(pg_catalog.=) $1",
				  4, types, values, nulls, SPI_OK_UPDATE);
}

/*
 * Before each batch: lock the source and the target for
 * the batch's transaction, which also brings this process the catalog
 * changes committed since the last batch, and check that what the job's
 * plans and writers rely on still holds: the relations' names, the key,
 * each copied column's name, number and types on both sides, and, where
 * the job writes the way COPY does, a target without rules, row level
 * security or another extension's planning of its inserts (nor insert
 * triggers, for the bulk path).  A
 * job that went on after such a change could write wrong values, or
 * bypass a foreign key added meanwhile; it fails instead, and a new call
 * resumes it with the new definitions.
 */
static void
check_definitions(CopyState *st)
{
	ToolsJob   *job = &st->job;
	ToolsJob	now = *job;
	const char *changed = NULL;

	LockRelationOid(job->source, AccessShareLock);
	LockRelationOid(job->target, RowExclusiveLock);
	tools_describe_job(&now);
	if (strcmp(now.source_name, job->source_name) != 0 ||
		strcmp(now.target_name, job->target_name) != 0)
		changed = "The source or the target was renamed.";
	else if (strcmp(now.shape, job->shape) != 0)
		changed = "A copied column, or the key, was added, dropped, renamed, or changed its type.";
	else if (job->bulk || job->remote != NULL)
	{
		const char *why = job->bulk ? tools_bulk_obstacle(&now) :
		tools_insert_obstacle(&now);

		if (why != NULL)
			changed = psprintf("The target can no longer be written the way this job began to: %s.",
							   why);
	}
	if (changed != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the definition of %s or %s changed while job %lld was copying",
						job->source_name, job->target_name,
						(long long) job->job_id),
				 errdetail_internal("%s", changed),
				 errhint("The batches committed before the change are kept; CALL tools.start(%lld) resumes the job with the new definitions.",
						 (long long) job->job_id)));
}

/* Whether a batch's upper end is its lower end: it would copy nothing new. */
static bool
stands_still(CopyState *st, const Datum *upper)
{
	ToolsJob   *job = &st->job;
	int			i;

	if (!st->has_last || job->nkeys == 0)
		return false;
	for (i = 0; i < job->nkeys; i++)
		if (!datumIsEqual(upper[i], st->last[i], job->keys[i].typbyval,
						  job->keys[i].typlen))
			return false;
	return true;
}

/*
 * Whether the job may take the batch that found nothing left to copy for
 * its end.  A local table is read with a snapshot taken after its lock.
 * Another source may not be: postgres_fdw's remote transaction takes its
 * snapshot with its first statement, before that statement locks the
 * remote table, and a table rewritten by DDL that commits in between (ALTER
 * TABLE ... TYPE, which is not MVCC-safe) looks empty in that snapshot.
 * Such a job ends only when a second transaction, whose snapshot comes
 * after that DDL, finds nothing left either.
 */
static bool
nothing_left(CopyState *st)
{
	char		relkind = get_rel_relkind(st->job.source);

	if (relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE ||
		relkind == RELKIND_MATVIEW || st->nothing_seen)
		return true;
	st->nothing_seen = true;
	elog(DEBUG1, "tools job %lld found nothing left to copy in %s; a new transaction looks again",
		 (long long) st->job.job_id, st->job.source_name);
	return false;
}

/*
 * Copy the next key range and record it.  The job is done after the last
 * batch: the one that found no batchsize-th key (or had no batch size).
 */
static void
copy_batch(CopyState *st)
{
	ToolsJob   *job = &st->job;
	Datum	   *upper = palloc(sizeof(Datum) * job->nkeys);
	Oid			types[10] = {INT8OID, TEXTARRAYOID, INT8OID, INT8OID, INTERVALOID,
	BOOLOID, BOOLOID, INT8OID, INT8OID, INT8OID};
	Datum		values[10];
	char		nulls[10] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', 'n', 'n', 'n'};
	Interval	span;
	uint64		copied = 0;
	int			i;
	bool		found = false;
	bool		last_batch = true;
	bool		first = job->nkeys > 0 && !st->has_last;
	ToolsSnapshot snap;
	double		width = 0;

	check_definitions(st);
	tools_execute("SET CONSTRAINTS ALL IMMEDIATE", 0, NULL, NULL, NULL,
				  SPI_OK_UTILITY);
	prefer_remote_sort(st);

	/*
	 * Before the first batch reads the source, where the source stands: what
	 * its server writes from now on has a newer xmin, which tools.repair()
	 * looks for.
	 */
	values[6] = BoolGetDatum(first);
	if (first && tools_source_snapshot(job, &snap, NULL))
	{
		values[7] = Int64GetDatum(snap.xmin);
		values[8] = Int64GetDatum(snap.system);
		values[9] = Int64GetDatum(snap.relation);
		nulls[7] = nulls[8] = nulls[9] = ' ';
	}
	tools_guard_source(job);

	if (job->nkeys == 0)
		found = !st->copied_all;	/* no key: everything, in one batch */
	else if (st->windows)
	{
		found = next_window(st, upper, &width);
		last_batch = !found;
	}
	else if (st->has_next && st->next_found)
	{
		for (i = 0; i < job->nkeys; i++)
			upper[i] = datumCopy(st->next[i], job->keys[i].typbyval,
								 job->keys[i].typlen);
		found = true;
		last_batch = false;
	}
	else if (!st->has_next && job->batchsize > 0 &&
			 find_upper(st, PLAN_NEXT, upper))
	{
		found = true;
		last_batch = false;
	}
	else
		found = find_upper(st, PLAN_LAST, upper);
	st->has_next = false;
	if (found)
		st->nothing_seen = false;
	else if (job->nkeys > 0 && !nothing_left(st))
		last_batch = false;
	if (found && stands_still(st, upper))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("batch of job %lld does not advance past key %s",
						(long long) job->job_id,
						tools_key_string(job, upper)),
				 errdetail("Its upper end is the position it starts from, so it would copy the same rows again and again."),
				 errhint("Check that the key's ordering is the same on the source's server as here, and that the condition is an expression on the source's rows.")));

	/*
	 * A batch before the last need not wait for its WAL to reach disk: a
	 * crash can only undo it whole, its rows with its record, and the resume
	 * copies it again.  The last batch waits, so that a job is durably
	 * completed when its call returns.
	 */
	if (!last_batch)
		tools_execute("SET LOCAL synchronous_commit TO off", 0, NULL, NULL,
					  NULL, SPI_OK_UTILITY);

	if (found)
	{
		SPIPlanPtr	plan = st->plans[PLAN_COPY][st->has_last];
		ParamListInfo params = batch_params(st, upper);
		bool		prefetch;
		bool		remote;

		/*
		 * Over a connection of its own, the remote server finds the next
		 * batch's upper end while this batch streams.
		 */
		prefetch = job->remote != NULL && !last_batch &&
			tools_remote_prefetch(job, st->plans[PLAN_NEXT][1],
								  range_params(st, upper, NULL));
		remote = job->remote != NULL &&
			tools_remote_batch(job, st->plans[PLAN_REMOTE][st->has_last],
							   params, &copied);
		if (!remote && job->bulk)
			copied = tools_bulk_copy(job, plan, params);
		else if (!remote)
			copied = tools_execute_plan(plan, params, false, SPI_OK_INSERT);
		/* Without a key, everything is one batch: none copied, once more. */
		if (job->nkeys == 0 && copied == 0 && !nothing_left(st))
			last_batch = false;
		if (st->windows)
			st->width = tools_window_width(width, copied, job->batchsize,
										   st->width);
		if (prefetch)
		{
			MemoryContext oldcxt;

			MemoryContextReset(st->nextcxt);
			oldcxt = MemoryContextSwitchTo(st->nextcxt);
			st->next = palloc(sizeof(Datum) * job->nkeys);
			st->next_found = tools_remote_prefetched(job, st->next);
			MemoryContextSwitchTo(oldcxt);
			st->has_next = true;
		}
	}
	tools_guard_source(NULL);

	values[0] = Int64GetDatum(job->job_id);
	position_params(st, found && job->nkeys > 0 ? upper : NULL, &types[1],
					&values[1], &nulls[1]);
	values[3] = Int64GetDatum((int64) copied);
	elapsed_since(st, &span);
	values[4] = IntervalPGetDatum(&span);
	values[5] = BoolGetDatum(last_batch);
	if (tools_execute("UPDATE " TOOLS_SCHEMA ".job SET lastkey = COALESCE($2, lastkey),"
					  " lastseq = COALESCE($3, lastseq),"
					  " rows = rows OPERATOR(pg_catalog.+) $4,"
					  " elapsed = elapsed OPERATOR(pg_catalog.+) $5,"
					  " rate = CASE WHEN EXTRACT(epoch FROM $5) OPERATOR(pg_catalog.>) 0"
					  " THEN $4 OPERATOR(pg_catalog./) EXTRACT(epoch FROM $5) END,"
					  " updated = pg_catalog.clock_timestamp(),"
					  " state = CASE WHEN $6 THEN 'completed' ELSE 'running' END"
					  "::" TOOLS_SCHEMA ".state,"
					  " source_xmin = CASE WHEN $7 THEN $8 ELSE source_xmin END,"
					  " source_system = CASE WHEN $7 THEN $9 ELSE source_system END,"
					  " source_relation = CASE WHEN $7 THEN $10 ELSE source_relation END"
					  " WHERE job_id OPERATOR(pg_catalog.=) $1",
					  10, types, values, nulls, SPI_OK_UPDATE) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("job %lld was deleted while it was copying",
						(long long) job->job_id),
				 errdetail("Its tools.job row is gone, so the batch could not be recorded; it was rolled back."),
				 errhint("Plan a new run with tools.run().")));

	if (found && job->nkeys > 0)
		set_last(st, upper);
	st->done = last_batch;
}

/*
 * Take the target's lock, kept until the call ends, which completed
 * siblings take in turn.
 */
static void
lock_target(CopyState *st)
{
	if (st->target_locked)
		return;
	TOOLS_SET_LOCKTAG(st->target_lock, st->job.target, TOOLS_TARGET_LOCK_SPACE);
	(void) LockAcquire(&st->target_lock, ExclusiveLock, true, false);
	st->target_locked = true;
}

/*
 * After the last batch: whether this job builds its target's deferred
 * indexes again, decided holding the target's lock.
 */
static void
check_indexes(CopyState *st)
{
	st->restoring = false;
	if (!tools_may_read("deferred_index"))
		return;
	lock_target(st);
	st->restoring = tools_restore_due(&st->job);
}

/* Build one deferred index again, or find that none is left. */
static void
restore_index(CopyState *st)
{
	st->restoring = tools_restore_index(&st->job);
}

/*
 * Add back, or validate, one foreign key that the run deferred and whose
 * tables' jobs have all completed, or find that none is left.
 */
static void
restore_constraint(CopyState *st)
{
	st->restoring = tools_may_read("deferred_constraint") &&
		tools_restore_constraint(&st->job);
}

/*
 * After the copy: the sequences of the target's columns past the copied
 * values, holding the target's lock, unless the configuration says not to.
 */
static void
set_sequences(CopyState *st)
{
	if (!st->job.sequences || !tools_has_sequences(&st->job))
		return;
	lock_target(st);
	tools_set_sequences(&st->job);
}

static void
job_error_context(void *arg)
{
	CopyState  *st = (CopyState *) arg;

	if (st->job.target_name != NULL)
		errcontext("tools job %lld copying %s into %s",
				   (long long) st->job.job_id, st->job.source_name,
				   st->job.target_name);
	else
		errcontext("tools job %lld", (long long) st->job.job_id);
}

static void
run_job(int64 job_id)
{
	CopyState  *st = palloc0(sizeof(CopyState));
	ErrorContextCallback errcb;

	st->cxt = CurrentMemoryContext;
	st->scratch = AllocSetContextCreate(st->cxt, "tools step",
										ALLOCSET_DEFAULT_SIZES);
	st->keycxt = AllocSetContextCreate(st->cxt, "tools key",
									   ALLOCSET_SMALL_SIZES);
	st->nextcxt = AllocSetContextCreate(st->cxt, "tools next key",
										ALLOCSET_SMALL_SIZES);
	load_job(st, job_id);

	errcb.callback = job_error_context;
	errcb.arg = st;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	PG_TRY();
	{
		st->mark = GetCurrentTimestamp();
		run_step(st, begin_job);
		while (!st->done)
			run_step(st, copy_batch);
		/* The copy is done: let go of its plans and connections first. */
		free_plans(st);
		tools_remote_close(&st->job);
		run_step(st, check_indexes);
		while (st->restoring)
			run_step(st, restore_index);
		st->restoring = true;
		while (st->restoring)
			run_step(st, restore_constraint);
		run_step(st, set_sequences);
	}
	PG_FINALLY();
	{
		error_context_stack = errcb.previous;
		free_plans(st);
		tools_remote_close(&st->job);
		if (st->target_locked)
			LockRelease(&st->target_lock, ExclusiveLock, true);
	}
	PG_END_TRY();
}

PG_FUNCTION_INFO_V1(tools_start);

/*
 * CALL tools.start(job_id)
 */
Datum
tools_start(PG_FUNCTION_ARGS)
{
	int64		job_id;
	LOCKTAG		tag;
	MemoryContext cxt;
	MemoryContext oldcxt;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job_id must not be NULL")));
	job_id = PG_GETARG_INT64(0);

	if (!tools_called_nonatomic(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("tools.start(%lld) cannot run inside a transaction block",
						(long long) job_id),
				 errdetail("A job commits after each batch, so that a failure keeps the batches already copied."),
				 errhint("Run CALL tools.start(%lld) as a statement of its own, outside BEGIN and COMMIT.",
						 (long long) job_id)));

	/* The call's memory outlives the commits, like SPI's own for procedures. */
	cxt = AllocSetContextCreate(PortalContext, "tools job",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	tools_lock_job(job_id, &tag);
	PG_TRY();
	{
		run_job(job_id);
	}
	PG_FINALLY();
	{
		LockRelease(&tag, ExclusiveLock, true);
	}
	PG_END_TRY();

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	PG_RETURN_VOID();
}
