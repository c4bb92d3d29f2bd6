/*-------------------------------------------------------------------------
 *
 * verify.c
 *		tools.verify() and tools.estimate(): a job's whole range compared
 *		with the target, or its rows estimated or counted in the source
 *		(tools.run() estimates the jobs it plans).
 *
 * A job's range is what its batches cover together: the rows of the
 * source that meet its condition and have a key, within its part of the
 * key.  The same range of the target is where those rows land: the same
 * key bounds and the same condition, which names columns that the target
 * has too when it names copied columns.
 *
 * The comparison counts the rows of the range on each side and sums a
 * 64-bit hash of each row's text: a sum does not depend on the order of
 * the rows, and a missing, extra, doubled or changed row changes it.  The
 * source's columns are cast to the target's types first, so that both
 * sides write the same values as the same text; dates, intervals and
 * floats are written in fixed styles.
 *
 * IDENTIFICATION
 *		src/verify.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/typcache.h"

#include "tools.h"

/*
 * The hash of a row, from its column list, as a bigint: from each value's
 * own hash function (hash_record_extended(), from PostgreSQL 14 on), which
 * reads no text and is three times as fast, where every column's type has
 * one and both sides compute it alike (the same server, or a remote server
 * whose hash of a record is this one's: hash values depend on the
 * machine's byte order); md5() of the row's text otherwise.
 */
#define ROW_HASH_SQL \
	"pg_catalog.hash_record_extended(ROW(%s), 0)"
#define ROW_MD5_SQL \
	"('x' OPERATOR(pg_catalog.||) pg_catalog.left(pg_catalog.md5(" \
	"ROW(%s)::pg_catalog.text), 16))::pg_catalog.bit(64)::pg_catalog.int8"

/* Whether the range being read is the target's, for the error context. */
static bool reading_target = false;

static void
range_error_context(void *arg)
{
	ToolsJob   *job = (ToolsJob *) arg;

	if (reading_target)
		errcontext("range of tools job %lld in its target %s, where the key's bounds and the condition apply to the target's columns",
				   (long long) job->job_id, job->target_name);
	else
		errcontext("range of tools job %lld", (long long) job->job_id);
}

/* The jobs of a run, by id: TOOLS_JOB_COLUMNS rows in SPI_tuptable. */
static uint64
select_jobs(int64 run_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(run_id)};

	if (tools_execute("SELECT job_id FROM " TOOLS_SCHEMA ".job"
					  " WHERE run_id OPERATOR(pg_catalog.=) $1 AND config_id IS NULL"
					  " ORDER BY job_id LIMIT 1",
					  1, types, values, NULL, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("configuration of job %s does not exist",
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
				 errdetail("Its tools.config row was deleted after run %lld was planned: its source, key and condition are not known any more.",
						   (long long) run_id),
				 errhint("Plan a new run with tools.run().")));
	return tools_execute("SELECT " TOOLS_JOB_COLUMNS TOOLS_JOB_FROM
						 " WHERE j.run_id OPERATOR(pg_catalog.=) $1"
						 " ORDER BY j.job_id",
						 1, types, values, NULL, SPI_OK_SELECT);
}

/* The parameters of the job's range statements: the ends of its part. */
static ParamListInfo
range_params(const ToolsJob *job)
{
	Datum		lower = (Datum) 0;
	Datum		upper = (Datum) 0;

	if (job->part_lower != NULL)
		lower = tools_key_value(&job->keys[0], job->part_lower);
	if (job->part_upper != NULL)
		upper = tools_key_value(&job->keys[0], job->part_upper);
	return tools_params(job, lower, upper);
}

static SPIPlanPtr
prepare_range(const ToolsJob *job, const char *sql)
{
	SPIPlanPtr	plan = SPI_prepare(sql, NUM_PARAMS(job), tools_param_types(job));

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s (%s)",
			 SPI_result_code_string(SPI_result), sql);
	return plan;
}

/*
 * Run a range statement that returns one row of bigint or numeric columns;
 * values[i] is NULL for a NULL.
 */
static void
range_values(const ToolsJob *job, const char *sql, ParamListInfo params,
			 int n, char **values)
{
	SPIPlanPtr	plan = prepare_range(job, sql);
	int			i;

	tools_execute_plan(plan, params, true, SPI_OK_SELECT);
	for (i = 0; i < n; i++)
		values[i] = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								 i + 1);
	SPI_freeplan(plan);
}

/*
 * The rows of the job's range in its source: the planner's estimate for
 * the statement that reads them (with the source's statistics, or the
 * remote server's estimate where a foreign table asks for it), or a count.
 */
static int64
job_total(ToolsJob *job, bool exact)
{
	ParamListInfo params;
	SPIPlanPtr	plan;
	Portal		portal;
	double		rows;
	char	   *count;

	tools_describe_relations(job);
	tools_describe_key(job);
	params = range_params(job);
	if (exact)
	{
		range_values(job, tools_range_sql(job, "pg_catalog.count(*)", false, false, false),
					 params, 1, &count);
		return DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(count)));
	}

	/* A cursor gets the plan for these parameters; it is never read. */
	plan = prepare_range(job, tools_range_sql(job, "1", false, false, false));
	portal = SPI_cursor_open_with_paramlist(NULL, plan, params, true);
	rows = linitial_node(PlannedStmt, portal->stmts)->planTree->plan_rows;
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	return (int64) rows;
}

/*
 * Set the total of each job of a run, and return it in store when given.
 * When tolerant (tools.run() planning), a job whose range cannot be
 * planned now keeps a NULL total, and its own call of tools.start() will
 * say what is wrong; otherwise the error is raised.  The caller is
 * connected to SPI.
 */
void
tools_estimate_run(int64 run_id, bool exact, bool tolerant,
				   Tuplestorestate *store, TupleDesc desc)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	uint64		njobs = select_jobs(run_id);
	SPITupleTable *jobs = SPI_tuptable;
	ErrorContextCallback errcb;
	uint64		i;

	errcb.callback = range_error_context;
	errcb.previous = error_context_stack;
	for (i = 0; i < njobs; i++)
	{
		ToolsJob	job;
		volatile int64 total = -1;
		Oid			types[2] = {INT8OID, INT8OID};
		Datum		values[2];
		char		nulls[2] = {' ', ' '};

		memset(&job, 0, sizeof(job));
		tools_job_from_row(&job, jobs->vals[i], jobs->tupdesc, cxt);
		errcb.arg = &job;
		error_context_stack = &errcb;
		if (!tolerant)
			total = job_total(&job, exact);
		else
		{
			BeginInternalSubTransaction(NULL);
			MemoryContextSwitchTo(cxt);
			PG_TRY();
			{
				total = job_total(&job, exact);
				ReleaseCurrentSubTransaction();
			}
			PG_CATCH();
			{
				ErrorData  *edata;

				MemoryContextSwitchTo(cxt);
				edata = CopyErrorData();
				if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
					PG_RE_THROW();
				FlushErrorState();
				RollbackAndReleaseCurrentSubTransaction();
				elog(DEBUG1, "tools job %lld has no estimate: %s",
					 (long long) job.job_id, edata->message);
			}
			PG_END_TRY();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		error_context_stack = errcb.previous;

		values[0] = Int64GetDatum(job.job_id);
		values[1] = Int64GetDatum(total);
		nulls[1] = total < 0 ? 'n' : ' ';
		tools_execute("UPDATE " TOOLS_SCHEMA ".job SET total = $2"
					  " WHERE job_id OPERATOR(pg_catalog.=) $1",
					  2, types, values, nulls, SPI_OK_UPDATE);
		if (store != NULL)
		{
			bool		isnull[2] = {false, total < 0};

			tuplestore_putvalues(store, desc, values, isnull);
		}
	}
}

PG_FUNCTION_INFO_V1(tools_estimate);

/*
 * tools.estimate(run_id bigint DEFAULT NULL, exact boolean DEFAULT false)
 *		RETURNS TABLE (job_id bigint, total bigint)
 */
Datum
tools_estimate(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = tools_materialize(fcinfo, &desc);
	int64		run_id;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("exact must not be NULL")));
	run_id = tools_connect_run(fcinfo, 0);
	tools_estimate_run(run_id, PG_GETARG_BOOL(1), false, store, desc);
	SPI_finish();
	return (Datum) 0;
}

/*
 * The copied columns of the job's source, in the target's order, each cast
 * to the type of its target column where the two differ.
 */
static char *
source_columns(const ToolsJob *job)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < job->ncolumns; i++)
	{
		AttrNumber	attnum = job->target_attnums[i];
		char	   *name = get_attname(job->target, attnum, false);
		Oid			type;
		int32		typmod;
		Oid			collation;
		Oid			source_type;
		int32		source_typmod;

		get_atttypetypmodcoll(job->target, attnum, &type, &typmod, &collation);
		get_atttypetypmodcoll(job->source, get_attnum(job->source, name),
							  &source_type, &source_typmod, &collation);
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", quote_identifier(name));
		if (type != source_type || typmod != source_typmod)
			appendStringInfo(&buf, "::%s",
							 format_type_extended(type, typmod,
												  FORMAT_TYPE_TYPEMOD_GIVEN |
												  FORMAT_TYPE_FORCE_QUALIFY));
	}
	return buf.data;
}

/*
 * The count and the hash sum of the job's range in a relation, or of a key
 * range of it, (lower, upper], where the parameters have them.
 */
static void
compare_side(const ToolsJob *job, ParamListInfo params, bool lower, bool upper,
			 const char *row_hash, const char *columns, bool target,
			 char **values)
{
	char	   *list = psprintf("pg_catalog.count(*), pg_catalog.sum(%s)",
								psprintf(row_hash, columns));

	reading_target = target;
	range_values(job, tools_range_sql(job, list, lower, upper, target), params,
				 2, values);
	reading_target = false;
	if (values[1] == NULL)
		values[1] = "0";
}

/* The row hash of a job's ranges: ROW_HASH_SQL where it can be used. */
static const char *
job_row_hash(const ToolsJob *job)
{
#if PG_VERSION_NUM >= 140000
	int			i;

	for (i = 0; i < job->ncolumns; i++)
	{
		TypeCacheEntry *entry = lookup_type_cache(get_atttype(job->target,
															  job->target_attnums[i]),
												  TYPECACHE_HASH_EXTENDED_PROC);

		if (!OidIsValid(entry->hash_extended_proc))
			return ROW_MD5_SQL;
	}
	return ROW_HASH_SQL;
#else
	return ROW_MD5_SQL;
#endif
}

/*
 * The count and hash sum of the job's range, or of a key range of it, on
 * both sides: a postgres_fdw source's rows are hashed by its server, while
 * the target's are hashed here (tools_remote_hash_send(), whose connection
 * lives in cxt); another source's rows are read and hashed here.
 */
static void
compare_range(ToolsJob *job, ParamListInfo params, bool lower, bool upper,
			  char **source, char **target, MemoryContext cxt)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(tools_range_sql(job, job->columns, lower,
														  upper, false),
										  NUM_PARAMS(job), tools_param_types(job),
										  CURSOR_OPT_CUSTOM_PLAN);
	const char *row_hash = job_row_hash(job);
	bool		remote;

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);			/* postgres_fdw's plan is looked at in it */
	remote = tools_remote_hash_send(job, plan, params, row_hash, ROW_MD5_SQL,
									&row_hash, cxt);
	SPI_freeplan(plan);
	compare_side(job, params, lower, upper, row_hash, job->columns, true, target);
	if (remote)
		tools_remote_hash_result(job, source);
	else
		compare_side(job, params, lower, upper, row_hash, source_columns(job),
					 false, source);
}

PG_FUNCTION_INFO_V1(tools_verify);

/*
 * tools.verify(run_id bigint DEFAULT NULL)
 *		RETURNS TABLE (job_id bigint, target regclass, lower text, upper text,
 *					   source_rows bigint, target_rows bigint,
 *					   source_hash numeric, target_hash numeric, ok boolean)
 */
Datum
tools_verify(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = tools_materialize(fcinfo, &desc);
	MemoryContext cxt = CurrentMemoryContext;
	int64		run_id;
	uint64		njobs;
	SPITupleTable *jobs;
	uint64		i;
	int			level;
	ErrorContextCallback errcb;

	run_id = tools_connect_run(fcinfo, 0);
	njobs = select_jobs(run_id);
	jobs = SPI_tuptable;
	level = tools_fix_style();
	reading_target = false;
	errcb.callback = range_error_context;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	for (i = 0; i < njobs; i++)
	{
		ToolsJob	job;
		ParamListInfo params;
		char	   *source[2];
		char	   *target[2];
		Datum		values[9];
		bool		nulls[9] = {false};

		memset(&job, 0, sizeof(job));
		tools_job_from_row(&job, jobs->vals[i], jobs->tupdesc, cxt);
		errcb.arg = &job;
		tools_describe_job(&job);
		params = range_params(&job);
		PG_TRY();
		{
			compare_range(&job, params, false, false, source, target, cxt);
		}
		PG_FINALLY();
		{
			tools_remote_close(&job);
		}
		PG_END_TRY();

		values[0] = Int64GetDatum(job.job_id);
		values[1] = ObjectIdGetDatum(job.target);
		nulls[2] = job.part_lower == NULL;
		if (!nulls[2])
			values[2] = CStringGetTextDatum(job.part_lower);
		nulls[3] = job.part_upper == NULL;
		if (!nulls[3])
			values[3] = CStringGetTextDatum(job.part_upper);
		values[4] = DirectFunctionCall1(int8in, CStringGetDatum(source[0]));
		values[5] = DirectFunctionCall1(int8in, CStringGetDatum(target[0]));
		values[6] = DirectFunctionCall3(numeric_in, CStringGetDatum(source[1]),
										ObjectIdGetDatum(InvalidOid),
										Int32GetDatum(-1));
		values[7] = DirectFunctionCall3(numeric_in, CStringGetDatum(target[1]),
										ObjectIdGetDatum(InvalidOid),
										Int32GetDatum(-1));
		values[8] = BoolGetDatum(strcmp(source[0], target[0]) == 0 &&
								 strcmp(source[1], target[1]) == 0);
		tuplestore_putvalues(store, desc, values, nulls);
	}
	error_context_stack = errcb.previous;
	tools_restore_settings(level);
	SPI_finish();
	return (Datum) 0;
}

/*
 * tools.repair(): a run's targets made equal to their sources again, where
 * rows changed on the source since the copy (the cutover).
 *
 * Each completed job's range is compared by count and hash, as verify()
 * does, and a range that differs is split at the median key of the side
 * with more rows, until its pieces hold at most REPAIR_LEAF_ROWS rows on
 * either side; only those leaves are compared row by row and repaired,
 * each in one statement and a transaction of its own: the target's rows
 * whose key the source lacks are deleted, the changed ones updated, the
 * missing ones inserted, and the rows that did not change are left alone,
 * so that no foreign key's action (ON DELETE CASCADE, for one) fires for
 * them.  A kill at any point leaves each leaf as it was or equal to its
 * source, and a new call ends exact.  Ranges are compared
 * one per transaction too, each holding nothing across the commits but the
 * keys of the ranges still to look at.
 *
 * A job that is not completed is left to tools.start(), which copies its
 * rest; its session lock keeps a call of it out while the job is repaired.
 */
#define REPAIR_LEAF_ROWS 1000

/* A key range to compare: (lower, upper], lower NULL for no lower end. */
typedef struct RepairRange
{
	Datum	   *lower;
	Datum	   *upper;
} RepairRange;

/* What a job's repair found and did. */
typedef struct RepairState
{
	ToolsJob	job;
	MemoryContext cxt;			/* lives for the call */
	List	   *todo;			/* RepairRange, in cxt */
	int64		leaves;			/* key ranges that differed */
	int64		extra;			/* rows deleted: the source lacks their key */
	int64		changed;		/* rows updated */
	int64		missing;		/* rows inserted */
} RepairState;

/* The parameters of a range's statements: its ends and the job's part. */
static ParamListInfo
repair_params(const ToolsJob *job, const RepairRange *r)
{
	ParamListInfo params = range_params(job);
	int			i;

	for (i = 0; i < job->nkeys; i++)
	{
		if (r->lower != NULL)
		{
			params->params[PARAM_LAST(job, i)].value = r->lower[i];
			params->params[PARAM_LAST(job, i)].isnull = false;
		}
		params->params[PARAM_UPPER(job, i)].value = r->upper[i];
		params->params[PARAM_UPPER(job, i)].isnull = false;
	}
	return params;
}

/*
 * The key at rank n of a side of the job's range, or of range r of it, in
 * the key's order or its reverse, into key (in cxt); false where the side
 * has no such row.
 */
static bool
rank_key(RepairState *rs, const RepairRange *r, bool target, bool desc,
		 int64 n, Datum **key)
{
	ToolsJob   *job = &rs->job;
	ParamListInfo params = r != NULL ? repair_params(job, r) : range_params(job);
	SPIPlanPtr	plan = prepare_range(job, tools_rank_sql(job, r != NULL && r->lower != NULL,
														 r != NULL, target, desc, n));
	bool		found;
	int			i;

	reading_target = target;
	found = tools_execute_plan(plan, params, true, SPI_OK_SELECT) > 0;
	reading_target = false;
	if (found)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(rs->cxt);

		*key = palloc(sizeof(Datum) * job->nkeys);
		for (i = 0; i < job->nkeys; i++)
		{
			bool		isnull;

			(*key)[i] = datumCopy(tools_result_value(i + 1, &isnull),
								  job->keys[i].typbyval, job->keys[i].typlen);
		}
		MemoryContextSwitchTo(oldcxt);
	}
	SPI_freeplan(plan);
	return found;
}

/* Whether two keys of the job are the same, as their text says. */
static bool
same_key(const ToolsJob *job, const Datum *a, const Datum *b)
{
	int			i;

	for (i = 0; i < job->nkeys; i++)
		if (strcmp(tools_key_text(&job->keys[i], a[i]),
				   tools_key_text(&job->keys[i], b[i])) != 0)
			return false;
	return true;
}

/* Put a range to compare first, in the call's memory. */
static void
push_range(RepairState *rs, Datum *lower, Datum *upper)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(rs->cxt);
	RepairRange *r = palloc(sizeof(RepairRange));

	r->lower = lower;
	r->upper = upper;
	rs->todo = lcons(r, rs->todo);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * The job's whole range, up to its largest key on either side; nothing
 * when both sides are empty.
 */
static void
first_range(RepairState *rs)
{
	Datum	   *source_max = NULL;
	Datum	   *target_max = NULL;
	bool		source_has = rank_key(rs, NULL, false, true, 0, &source_max);
	bool		target_has = rank_key(rs, NULL, true, true, 0, &target_max);
	Datum	   *upper = source_has ? source_max : target_max;
	Datum	   *above;

	if (!source_has && !target_has)
		return;
	if (source_has && target_has)
	{
		/*
		 * The target's largest key where the target has a row above the
		 * source's largest, in the key's order: (source_max, target_max].
		 */
		RepairRange r = {source_max, target_max};

		if (rank_key(rs, &r, true, false, 0, &above))
			upper = target_max;
	}
	push_range(rs, NULL, upper);
}

/*
 * Make a leaf of the target equal to the source, row by row: the rows whose
 * key the source lacks deleted, the changed ones updated, the missing ones
 * inserted (tools_repair_sql()).
 */
static void
repair_leaf(RepairState *rs, RepairRange *r)
{
	ToolsJob   *job = &rs->job;
	ParamListInfo params = repair_params(job, r);
	SPIPlanPtr	plan;
	bool		isnull;

	/* The source's columns as verify compares them, named as the target's. */
	plan = prepare_range(job, tools_repair_sql(job, r->lower != NULL,
											   source_columns(job)));
	tools_execute_plan(plan, params, false, SPI_OK_SELECT);
	rs->extra += DatumGetInt64(tools_result_value(1, &isnull));
	rs->changed += DatumGetInt64(tools_result_value(2, &isnull));
	rs->missing += DatumGetInt64(tools_result_value(3, &isnull));
	rs->leaves++;
	SPI_freeplan(plan);
}

/* Compare the next range; repair it or split it where it differs. */
static void
repair_step(RepairState *rs)
{
	ToolsJob   *job = &rs->job;
	RepairRange *r = linitial(rs->todo);
	ParamListInfo params = repair_params(job, r);
	char	   *source[2];
	char	   *target[2];
	int64		source_rows;
	int64		target_rows;
	Datum	   *mid;
	bool		from_target;

	rs->todo = list_delete_first(rs->todo);
	compare_range(job, params, r->lower != NULL, true, source, target, rs->cxt);
	if (strcmp(source[0], target[0]) == 0 && strcmp(source[1], target[1]) == 0)
		return;
	source_rows = DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(source[0])));
	target_rows = DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(target[0])));
	from_target = target_rows > source_rows;
	if (Max(source_rows, target_rows) <= REPAIR_LEAF_ROWS ||
		!rank_key(rs, r, from_target, false,
				  Max(source_rows, target_rows) / 2 - 1, &mid) ||
		same_key(job, mid, r->upper))
	{
		repair_leaf(rs, r);
		return;
	}
	/* The lower half first, so that leaves are repaired in key order. */
	push_range(rs, mid, r->upper);
	push_range(rs, r->lower, mid);
}

/* Compare, and repair where it differs, one completed job's range. */
static void
repair_job(RepairState *rs)
{
	ToolsJob   *job = &rs->job;
	int			level;

	tools_connect_nonatomic();
	level = tools_fix_style();
	first_range(rs);
	tools_restore_settings(level);
	tools_commit_and_finish();
	while (rs->todo != NIL)
	{
		CHECK_FOR_INTERRUPTS();
		tools_connect_nonatomic();
		level = tools_fix_style();
		repair_step(rs);
		tools_restore_settings(level);
		tools_commit_and_finish();
	}
	/* Rows inserted or updated may hold larger values of its sequences. */
	if (rs->leaves > 0 && job->sequences)
	{
		tools_connect_nonatomic();
		if (tools_has_sequences(job))
			tools_set_sequences(job);
		tools_commit_and_finish();
	}
	if (rs->leaves == 0)
		ereport(NOTICE,
				(errmsg("tools job %lld: %s equals %s in the job's range",
						(long long) job->job_id, job->target_name, job->source_name)));
	else
		ereport(NOTICE,
				(errmsg("tools job %lld: %lld key ranges of %s differed from %s: %lld rows missing, %lld extra and %lld changed, now as in the source",
						(long long) job->job_id, (long long) rs->leaves,
						job->target_name, job->source_name,
						(long long) rs->missing, (long long) rs->extra,
						(long long) rs->changed)));
}

PG_FUNCTION_INFO_V1(tools_repair);

/* CALL tools.repair(run_id bigint DEFAULT NULL) */
Datum
tools_repair(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	int64		run_id;
	uint64		njobs;
	uint64		i;
	int64	   *job_ids;
	ErrorContextCallback errcb;

	if (!tools_called_nonatomic(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("tools.repair() cannot run inside a transaction block"),
				 errdetail("It commits after each key range it repairs, so that a failure keeps the ranges already repaired."),
				 errhint("Run CALL tools.repair() as a statement of its own, outside BEGIN and COMMIT.")));

	/* The call's memory outlives the commits. */
	cxt = AllocSetContextCreate(PortalContext, "tools repair",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	run_id = tools_connect_run(fcinfo, 0);
	njobs = select_jobs(run_id);
	job_ids = MemoryContextAlloc(cxt, sizeof(int64) * Max(njobs, 1));
	for (i = 0; i < njobs; i++)
	{
		bool		isnull;

		job_ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												 SPI_tuptable->tupdesc, 1,
												 &isnull));
	}
	SPI_finish();

	errcb.callback = range_error_context;
	errcb.previous = error_context_stack;
	for (i = 0; i < njobs; i++)
	{
		RepairState *rs = palloc0(sizeof(RepairState));
		LOCKTAG		tag;
		Oid			types[1] = {INT8OID};
		Datum		values[1] = {Int64GetDatum(job_ids[i])};
		bool		completed;
		bool		isnull;

		rs->cxt = cxt;
		tools_lock_job(job_ids[i], &tag);
		PG_TRY();
		{
			tools_connect_nonatomic();
			if (tools_execute("SELECT " TOOLS_JOB_COLUMNS ", j.state OPERATOR(pg_catalog.=) 'completed'"
							  TOOLS_JOB_FROM " WHERE j.job_id OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, SPI_OK_SELECT) != 1)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("job %lld was deleted while its run was repaired",
								(long long) job_ids[i]),
						 errhint("Plan a new run with tools.run().")));
			tools_job_from_row(&rs->job, SPI_tuptable->vals[0],
							   SPI_tuptable->tupdesc, cxt);
			completed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc,
												   TOOLS_JOB_NCOLUMNS + 1,
												   &isnull));
			MemoryContextSwitchTo(cxt);
			tools_describe_job(&rs->job);
			SPI_finish();
			MemoryContextSwitchTo(cxt);

			errcb.arg = &rs->job;
			error_context_stack = &errcb;
			if (rs->job.nkeys == 0)
				ereport(NOTICE,
						(errmsg("tools job %lld has no key: a range of it cannot be copied again",
								(long long) rs->job.job_id),
						 errhint("Plan a run of its target with trunc to copy it again whole.")));
			else if (!completed)
				ereport(NOTICE,
						(errmsg("tools job %lld has not completed: it is left to tools.start()",
								(long long) rs->job.job_id),
						 errhint("CALL tools.start(%lld) copies the rest of it; repair it once it has completed.",
								 (long long) rs->job.job_id)));
			else
				repair_job(rs);
			error_context_stack = errcb.previous;
		}
		PG_FINALLY();
		{
			tools_remote_close(&rs->job);
			LockRelease(&tag, ExclusiveLock, true);
		}
		PG_END_TRY();
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	PG_RETURN_VOID();
}
