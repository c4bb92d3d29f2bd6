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
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
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
	portal = SPI_cursor_open_with_paramlist(NULL, plan, params, false);
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
	remote = tools_remote_hash_send(job, plan, params, false, row_hash,
									ROW_MD5_SQL, &row_hash, cxt);
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
 * Each completed job's range is read in chunks, on both sides at once: the
 * next tools.repair_chunk rows after the chunk before, in the key's order,
 * each row as its key and the hash that verify() sums (over postgres_fdw,
 * the remote server reads and hashes its side, tools_remote_hash_send(),
 * while this one hashes the target's).  A merge of the two finds the keys
 * that differ: missing from the target, extra in it, or of another hash.
 * One statement repairs them, in the chunk's transaction: the target's rows
 * of those keys that the source lacks are deleted, the changed ones
 * updated, the missing ones inserted (tools_repair_sql()), and the rows
 * that did not change are left alone, so that no foreign key's action (ON
 * DELETE CASCADE, for one) fires for them.  So every row is read once on
 * each side, and only the rows that differ are written.
 *
 * A kill at any point leaves each chunk as it was or equal to its source,
 * and a new call, which compares again, ends exact.  Memory holds one
 * chunk's keys and hashes, whatever the size of the table.
 *
 * A job that is not completed is left to tools.start(), which copies its
 * rest; its session lock keeps a call of it out while the job is repaired.
 */
#define REPAIR_FETCH_ROWS 1000

/* One side of a chunk: its rows' keys and hashes, in the key's order. */
typedef struct ChunkSide
{
	int64		n;
	Datum	   *keys;			/* nkeys for each row */
	int64	   *hashes;
} ChunkSide;

/*
 * One side's keys from a to b counted in ranges of 2^shift keys: the
 * numbers of the ranges that hold keys (a key shifted right), ascending,
 * and their counts.
 */
typedef struct RangeCounts
{
	int64		a;
	int64		b;
	int			shift;
	int64	   *ranges;
	int64	   *counts;
	int64		n;
} RangeCounts;

/* What a job's repair found and did. */
typedef struct RepairState
{
	ToolsJob	job;
	MemoryContext cxt;			/* lives for the call */
	MemoryContext chunk_cxt;	/* a chunk's rows */
	FmgrInfo   *cmp;			/* each key column's btree comparison */
	Datum	   *position;		/* where the last chunk ended, in cxt; NULL
								 * before the first */
	bool		done;			/* the last chunk was open above */
	int			chunk;			/* rows of a side's chunk, at most */
	ChunkSide	source;			/* the chunk's rows, in arrays of */
	ChunkSide	target;			/* chunk rows, in cxt */
	Datum	   *differ;			/* the keys that differ, in one of */
	int64		chunks;			/* chunks, or key ranges, that differed */
	int64		extra;			/* rows deleted: the source lacks their key */
	int64		changed;		/* rows updated */
	int64		missing;		/* rows inserted */
	int64		written;		/* rows written on the source since the copy */
	bool		by_index[2];	/* the source's and the target's keys are
								 * counted through the key's index
								 * (key_indexed()) */
	bool		changed_sent;	/* the source's server reads the next changed
								 * keys (changed_keys()) */
	RangeCounts *deltas;		/* where set, the target's counts, which
								 * repair statements add the keys they insert
								 * to and take those they delete from */
	bool		windows;		/* chunks end at key windows too
								 * (chunk_window()) */
	int64		lo;				/* the source's smallest key, */
	int64		hi;				/* and its largest, when the repair began */
	int64		width;			/* the next window's width in key values */
	Datum		window_end;		/* the chunk's window ends at window_end */
	Datum	   *window;			/* (&window_end), or is open above (NULL) */
	int			(*settings) (void);	/* those of a transaction that repairs */
	int			level;			/* their GUC nest level, in the current one */
} RepairState;

/*
 * The run's repair lock (TOOLS_REPAIR_LOCK_SPACE) as this call holds it:
 * ShareLock while it shares the run's jobs with other calls, ExclusiveLock
 * alone (repair_alone()), NoLock before and after.
 */
static LOCKTAG repair_lock;
static LOCKMODE repair_lock_mode = NoLock;

#define SIDE_KEY(job, side, row) (&(side)->keys[(row) * (job)->nkeys])

/* Two keys of the job in the key's order, as its columns' collations say. */
static int
compare_keys(RepairState *rs, const Datum *a, const Datum *b)
{
	int			i;

	for (i = 0; i < rs->job.nkeys; i++)
	{
		int32		c = DatumGetInt32(FunctionCall2Coll(&rs->cmp[i],
														rs->job.keys[i].collation,
														a[i], b[i]));

		if (c != 0)
			return c;
	}
	return 0;
}

/*
 * The parameters of a chunk's statements: where the last chunk ended, the
 * chunk's upper end (NULL: none), and the job's part.
 */
static ParamListInfo
chunk_params(RepairState *rs, const Datum *upper)
{
	ToolsJob   *job = &rs->job;
	ParamListInfo params = range_params(job);
	int			i;

	for (i = 0; i < job->nkeys; i++)
	{
		if (rs->position != NULL)
		{
			params->params[PARAM_LAST(job, i)].value = rs->position[i];
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

/* A select list of a side's rows, the next chunk of them in the key's order. */
static char *
chunk_sql(RepairState *rs, const char *list, bool target)
{
	ToolsJob   *job = &rs->job;
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, tools_range_sql(job, list, rs->position != NULL,
												 rs->window != NULL, target));
	appendStringInfoString(&buf, " ORDER BY ");
	for (i = 0; i < job->nkeys; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "",
						 target ? job->keys[i].target_expr : job->keys[i].name);
	appendStringInfo(&buf, " LIMIT %d", rs->chunk);
	return buf.data;
}

/*
 * Read a side's chunk here: each row's key and hash.  Between fetches, a
 * remote server's rows of the other side are taken in, so that it goes on
 * hashing (drain).
 */
static void
read_side(RepairState *rs, ParamListInfo params, bool target,
		  const char *row_hash, bool drain, ChunkSide *side)
{
	ToolsJob   *job = &rs->job;
	StringInfoData list;
	SPIPlanPtr	plan;
	Portal		portal;
	MemoryContext oldcxt;
	uint64		row;
	int			i;

	initStringInfo(&list);
	for (i = 0; i < job->nkeys; i++)
		appendStringInfo(&list, "%s, ",
						 target ? job->keys[i].target_expr : job->keys[i].name);
	appendStringInfo(&list, row_hash, target ? job->columns : source_columns(job));
	plan = prepare_range(job, chunk_sql(rs, list.data, target));
	side->n = 0;
	reading_target = target;
	portal = SPI_cursor_open_with_paramlist(NULL, plan, params, false);
	do
	{
		SPI_cursor_fetch(portal, true, REPAIR_FETCH_ROWS);
		if (side->n + SPI_processed > rs->chunk)
			elog(ERROR, "a chunk of tools job %lld holds more than %d rows",
				 (long long) job->job_id, rs->chunk);
		oldcxt = MemoryContextSwitchTo(rs->chunk_cxt);
		for (row = 0; row < SPI_processed; row++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[row];
			bool		isnull;

			for (i = 0; i < job->nkeys; i++)
				SIDE_KEY(job, side, side->n)[i] =
					datumCopy(SPI_getbinval(tuple, SPI_tuptable->tupdesc, i + 1, &isnull),
							  job->keys[i].typbyval, job->keys[i].typlen);
			side->hashes[side->n] = DatumGetInt64(SPI_getbinval(tuple, SPI_tuptable->tupdesc,
																job->nkeys + 1, &isnull));
			if (isnull)
				side->hashes[side->n] = 0;
			side->n++;
		}
		MemoryContextSwitchTo(oldcxt);
		SPI_freetuptable(SPI_tuptable);
		if (drain)
			tools_remote_consume(job);
	} while (SPI_processed == REPAIR_FETCH_ROWS);
	SPI_cursor_close(portal);
	reading_target = false;
	SPI_freeplan(plan);
}

/*
 * Both sides' next chunk: the source's rows hashed by its server where it
 * can, while the target's are read here.
 */
static void
read_chunk(RepairState *rs, ChunkSide *source, ChunkSide *target)
{
	ToolsJob   *job = &rs->job;
	ParamListInfo params = chunk_params(rs, rs->window);
	const char *row_hash = job_row_hash(job);
	SPIPlanPtr	plan;
	bool		remote;

	plan = SPI_prepare_cursor(chunk_sql(rs, job->columns, false),
							  NUM_PARAMS(job), tools_param_types(job),
							  CURSOR_OPT_CUSTOM_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);			/* postgres_fdw's plan is looked at in it */
	remote = tools_remote_hash_send(job, plan, params, true, row_hash,
									ROW_MD5_SQL, &row_hash, rs->cxt);
	SPI_freeplan(plan);
	read_side(rs, params, true, row_hash, remote, target);
	if (remote)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(rs->chunk_cxt);

		source->n = tools_remote_keyed_result(job, source->keys, source->hashes,
											  rs->chunk);
		MemoryContextSwitchTo(oldcxt);
	}
	else
		read_side(rs, params, false, row_hash, false, source);
}

/*
 * The keys as an SQL array of the key's type, for a key of one column
 * whose type has one; NULL otherwise.
 */
static char *
keys_array_sql(RepairState *rs, Datum *keys, int64 n)
{
	ToolsKeyColumn *key = &rs->job.keys[0];
	Oid			array_type = get_array_type(key->type);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	ArrayType  *array;

	if (rs->job.nkeys != 1 || !OidIsValid(array_type))
		return NULL;
	get_typlenbyvalalign(key->type, &typlen, &typbyval, &typalign);
	array = construct_array(keys, (int) n, key->type, typlen, typbyval, typalign);
	return psprintf("%s::%s",
					quote_literal_cstr(OidOutputFunctionCall(F_ARRAY_OUT,
															 PointerGetDatum(array))),
					format_type_extended(array_type, -1, FORMAT_TYPE_FORCE_QUALIFY));
}

static int
int64_order(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y;
}

/*
 * Sort ranges (numbers) and their counts by number: a hash aggregate
 * returns them in no order, and ORDER BY would make the planner sort the
 * rows rather than hash them, as it takes every key for a range of its own.
 */
static void
sort_pairs(int64 *ranges, int64 *counts, int64 n)
{
	int64	   *pairs = palloc(sizeof(int64) * 2 * Max(n, 1));
	int64		i;

	for (i = 0; i < n; i++)
	{
		pairs[2 * i] = ranges[i];
		pairs[2 * i + 1] = counts[i];
	}
	qsort(pairs, n, sizeof(int64) * 2, int64_order);
	for (i = 0; i < n; i++)
	{
		ranges[i] = pairs[2 * i];
		counts[i] = pairs[2 * i + 1];
	}
	pfree(pairs);
}

/*
 * Fold the keys that a repair statement deleted and inserted (two bigint
 * arrays) into one side's counts, each key outside them left out: its
 * range's count less one for each deleted, more one for each inserted.
 */
static void
fold_deltas(RangeCounts *c, Datum deleted, Datum inserted)
{
	Datum		arrays[2] = {deleted, inserted};
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int64		kept = 0;
	int64		i;
	int			side;

	get_typlenbyvalalign(INT8OID, &typlen, &typbyval, &typalign);
	for (side = 0; side < 2; side++)
	{
		Datum	   *keys;
		bool	   *nulls;
		int			nkeys;
		int			k;

		deconstruct_array(DatumGetArrayTypeP(arrays[side]), INT8OID, typlen,
						  typbyval, typalign, &keys, &nulls, &nkeys);
		c->ranges = repalloc(c->ranges, sizeof(int64) * (c->n + nkeys + 1));
		c->counts = repalloc(c->counts, sizeof(int64) * (c->n + nkeys + 1));
		for (k = 0; k < nkeys; k++)
		{
			int64		key = DatumGetInt64(keys[k]);

			if (nulls[k] || key < c->a || key > c->b)
				continue;
			c->ranges[c->n] = key >> c->shift;
			c->counts[c->n++] = side == 0 ? -1 : 1;
		}
	}

	/* Each range once, with the sum of its counts; none left empty. */
	sort_pairs(c->ranges, c->counts, c->n);
	for (i = 0; i < c->n; i++)
	{
		if (kept > 0 && c->ranges[kept - 1] == c->ranges[i])
			c->counts[kept - 1] += c->counts[i];
		else
		{
			if (kept > 0 && c->counts[kept - 1] == 0)
				kept--;
			c->ranges[kept] = c->ranges[i];
			c->counts[kept++] = c->counts[i];
		}
	}
	if (kept > 0 && c->counts[kept - 1] == 0)
		kept--;
	c->n = kept;
}

/*
 * Execute a repair statement's plan; a row that a foreign key refuses
 * fails it with the server's error and hint, or, where it has none, hint.
 */
static void
execute_told(RepairState *rs, SPIPlanPtr plan, ParamListInfo params,
			 const char *hint)
{
	PG_TRY();
	{
		tools_execute_plan(plan, params, false, SPI_OK_SELECT);
	}
	PG_CATCH();
	{
		tools_rethrow_told(rs->cxt, ERRCODE_FOREIGN_KEY_VIOLATION, NULL, NULL,
						   hint);
	}
	PG_END_TRY();
}

static void
release_repair_lock(void)
{
	if (repair_lock_mode != NoLock)
		LockRelease(&repair_lock, repair_lock_mode, true);
	repair_lock_mode = NoLock;
}

/*
 * Before a repair statement drops foreign keys, hold the run's repair lock
 * alone: dropping a key waits for every writer of its two tables, and
 * another call writing there may be waiting for this one.  The call, which
 * shares the lock, commits what it has repaired, so that it holds no table
 * lock, lets go, and waits for the other calls of the run to end, saying
 * so: true where it waited, and what the statement meets may have changed.
 * The transaction's settings are made again in the new transaction.
 */
static bool
repair_alone(RepairState *rs)
{
	bool		waited = false;

	tools_restore_settings(rs->level);
	tools_commit();
	release_repair_lock();
	if (LockAcquire(&repair_lock, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		ereport(NOTICE,
				(errmsg("tools job %lld: a foreign key between targets of run %lld refused a row: this call waits for the other repairs of the run to end",
						(long long) rs->job.job_id, (long long) rs->job.run_id),
				 errdetail("The row may belong after rows that another call repairs; where it still does not, the keys between the run's targets are dropped, which one call does alone.")));
		(void) LockAcquire(&repair_lock, ExclusiveLock, true, false);
		waited = true;
	}
	repair_lock_mode = ExclusiveLock;
	rs->level = rs->settings();
	return waited;
}

/*
 * Try a repair statement's plan in a subtransaction: false where a foreign
 * key refused a row of it, which then changed nothing.
 */
static bool
try_repair(SPIPlanPtr plan, ParamListInfo params, MemoryContext errcxt)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool refused = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		tools_execute_plan(plan, params, false, SPI_OK_SELECT);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(errcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode != ERRCODE_FOREIGN_KEY_VIOLATION)
			ReThrowError(edata);
		refused = true;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return !refused;
}

/*
 * Execute a repair statement's plan, its foreign keys checked at its end.
 * One between the run's targets may refuse a row of it: a parent that
 * another job repairs later, or a child that one has not yet deleted.
 * Where the job's configuration defers constraints, a subtransaction holds
 * the statement's first try, so that another starts where the chunk
 * stood.  After a refusal the call holds the run alone (repair_alone()),
 * and tries again if it waited for other calls; if a key still refuses,
 * the foreign keys between the run's targets whose configurations defer
 * them are dropped (tools_defer_foreign_keys()), and the statement runs
 * again.  A repair that meets no such row leaves the keys alone, and has
 * none to validate.  Otherwise the error says how to go past it.
 */
static void
execute_repair(RepairState *rs, SPIPlanPtr plan, ParamListInfo params)
{
	ToolsJob   *job = &rs->job;

	tools_execute("SET CONSTRAINTS ALL IMMEDIATE", 0, NULL, NULL, NULL,
				  SPI_OK_UTILITY);
	if (!job->defer_constraints)
	{
		execute_told(rs, plan, params,
					 "Set defer_constraints in tools.config for the jobs of both tables: tools.repair() then drops their foreign keys when one refuses a row, and adds them back after.");
		return;
	}
	if (try_repair(plan, params, rs->cxt))
		return;
	if (repair_lock_mode != ExclusiveLock)
	{
		bool		waited = repair_alone(rs);

		tools_execute("SET CONSTRAINTS ALL IMMEDIATE", 0, NULL, NULL, NULL,
					  SPI_OK_UTILITY);
		if (waited && try_repair(plan, params, rs->cxt))
			return;
	}

	/* A key from or to another table stays, and refuses the row again. */
	tools_defer_foreign_keys(job->run_id);
	execute_told(rs, plan, params,
				 "tools.repair() drops only the foreign keys between targets of the run whose configurations set defer_constraints; a key from or to another table stays, and its rows must match.");
}

/*
 * Run a repair statement on a part of the job's range (tools_repair_sql():
 * the key range that lower and upper bound, with params, or the keys of an
 * SQL array), and count what it did: the rows deleted, updated and
 * inserted, into counts, and into the call's sums, and, where
 * rs->deltas is set, the keys it deleted and inserted into those counts.
 * A key that the source's rows there hold more than once fails it, which
 * undoes it.
 */
static void
repair_statement(RepairState *rs, ParamListInfo params, bool lower,
				 bool upper, const char *array, int64 *counts)
{
	ToolsJob   *job = &rs->job;
	SPIPlanPtr	plan;
	bool		isnull;
	int64		twice;
	int			i;

	plan = prepare_range(job, tools_repair_sql(job, lower, upper,
											   source_columns(job), array,
											   rs->deltas != NULL));
	execute_repair(rs, plan, params);
	for (i = 0; i < 3; i++)
		counts[i] = DatumGetInt64(tools_result_value(i + 1, &isnull));
	twice = DatumGetInt64(tools_result_value(4, &isnull));
	if (twice > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("tools job %lld cannot repair %s: its key is not unique in %s",
						(long long) job->job_id, job->target_name,
						job->source_name),
				 errdetail_plural("%lld key of the rows being repaired is held by more than one row of the source; the statement changed nothing.",
								  "%lld keys of the rows being repaired are each held by more than one row of the source; the statement changed nothing.",
								  twice, (long long) twice),
				 errhint("Make the key unique in the source, or name a key that is unique in tools.config, then call tools.repair() again.")));
	if (rs->deltas != NULL)
		fold_deltas(rs->deltas, tools_result_value(5, &isnull),
					tools_result_value(6, &isnull));
	SPI_freeplan(plan);
	rs->extra += counts[0];
	rs->changed += counts[1];
	rs->missing += counts[2];
}

/*
 * Key windows (tools_use_windows()) for a source whose wrapper would sort
 * the rest of the range for each chunk's ORDER BY ... LIMIT: a chunk is
 * also bounded above by the key window that follows it, which the
 * wrapper sends along, so that the source's server sorts only the rows of
 * one window.  window_span() finds the source's keys' span and number
 * when the repair begins, false when it holds none; chunk_window() sets
 * the next chunk's window, none (open above) once it would reach the
 * largest key, so that the last chunk reads what lies above it too.
 */
static bool
window_span(RepairState *rs)
{
	ToolsJob   *job = &rs->job;
	SPIPlanPtr	plan = prepare_range(job, tools_span_sql(job, false));
	bool		found;

	found = tools_execute_plan(plan, range_params(job), false, SPI_OK_SELECT) > 0;
	if (found)
		tools_window_span(job, rs->chunk, &rs->lo, &rs->hi, &rs->width);
	SPI_freeplan(plan);
	return found;
}

static void
chunk_window(RepairState *rs)
{
	bool		has_last = rs->position != NULL;
	int64		end;

	rs->window = NULL;
	if (!rs->windows)
		return;
	if (!tools_window_end(rs->lo, has_last,
						  has_last ? tools_key_int64(&rs->job, rs->position) : 0,
						  rs->width, &end) ||
		end >= rs->hi)
		return;
	rs->window_end = tools_int64_key(&rs->job, end);
	rs->window = &rs->window_end;
}

/*
 * Compare the next chunk of the job's range, and repair the keys that
 * differ.  The chunk ends where the first side to fill its rows
 * rows ends: the other side's rows beyond belong to the next chunk; or,
 * where neither fills them, at its key window's end.
 */
static void
repair_chunk(RepairState *rs)
{
	ToolsJob   *job = &rs->job;
	ChunkSide  *source = &rs->source;
	ChunkSide  *target = &rs->target;
	Datum	   *upper = NULL;
	int64		ndiffer = 0;
	int64		i = 0;
	int64		j = 0;
	char	   *array = NULL;
	int64		counts[3];
	int			k;

	chunk_window(rs);
	read_chunk(rs, source, target);
	if (source->n == rs->chunk)
		upper = SIDE_KEY(job, source, source->n - 1);
	if (target->n == rs->chunk &&
		(upper == NULL ||
		 compare_keys(rs, SIDE_KEY(job, target, target->n - 1), upper) < 0))
		upper = SIDE_KEY(job, target, target->n - 1);
	if (upper == NULL)
		upper = rs->window;
	if (rs->windows && upper != NULL)
		rs->width = tools_window_width((double) tools_key_int64(job, upper) -
									   (rs->position != NULL ?
										(double) tools_key_int64(job, rs->position) :
										(double) rs->lo - 1),
									   Max(source->n, target->n), rs->chunk,
									   rs->width);

	for (;;)
	{
		Datum	   *s = i < source->n ? SIDE_KEY(job, source, i) : NULL;
		Datum	   *t = j < target->n ? SIDE_KEY(job, target, j) : NULL;
		Datum	   *key;
		int			c;

		if (s != NULL && upper != NULL && compare_keys(rs, s, upper) > 0)
			s = NULL;
		if (t != NULL && upper != NULL && compare_keys(rs, t, upper) > 0)
			t = NULL;
		if (s == NULL && t == NULL)
			break;
		c = s == NULL ? 1 : t == NULL ? -1 : compare_keys(rs, s, t);
		key = c > 0 ? t : s;
		if (c < 0)
			i++;
		else if (c > 0)
			j++;
		else if (source->hashes[i++] == target->hashes[j++])
			continue;
		for (k = 0; k < job->nkeys; k++)
			rs->differ[ndiffer * job->nkeys + k] = key[k];
		ndiffer++;
	}

	if (ndiffer > 0)
	{
		/*
		 * The keys that differ, or, where they are many or the key has
		 * several columns, the chunk's whole range.
		 */
		if (ndiffer <= rs->chunk / 4)
			array = keys_array_sql(rs, rs->differ, ndiffer);
		repair_statement(rs, chunk_params(rs, upper),
						 rs->position != NULL && array == NULL,
						 upper != NULL && array == NULL, array, counts);
		ereport(DEBUG1,
				(errmsg("tools job %lld: keys %s %s up to %s repaired; rows: %lld missing, %lld extra, %lld changed",
						(long long) job->job_id,
						rs->position == NULL ? "from" : "above",
						rs->position == NULL ? "the first" :
						tools_key_string(job, rs->position),
						upper == NULL ? "the last" :
						tools_key_string(job, upper),
						(long long) counts[2], (long long) counts[0],
						(long long) counts[1])));
		rs->chunks++;
	}

	rs->done = upper == NULL;
	if (upper != NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(rs->cxt);

		rs->position = palloc(sizeof(Datum) * job->nkeys);
		for (k = 0; k < job->nkeys; k++)
			rs->position[k] = datumCopy(upper[k], job->keys[k].typbyval,
										job->keys[k].typlen);
		MemoryContextSwitchTo(oldcxt);
	}
}

/*
 * The cutover's short way, for a job whose key is one integer column and
 * whose source keeps an xmin on its rows (a table here, or a postgres_fdw
 * table of one), where the job recorded where its source stood when its
 * copy began (tools.job.source_xmin, of that server) and the source is
 * still the relation the copy read (tools.job.source_relation).  Every
 * row version the source's server wrote since then has a newer xmin:
 * those rows are read there (tools_changed_keys_sql(), a scan that reads
 * no row's values) and their keys repaired; the rows that did not change
 * since are on the target as the copy wrote them.  The rows deleted since
 * leave no trace but their keys' absence: the keys of both sides are
 * counted in ranges of 2^shift keys (the key shifted right), at most
 * 2^REPAIR_RANGE_BITS of them over the keys' span, in one statement on
 * each side, both servers counting at once where the source's is another.
 * A range whose counts differ and that holds more than REPAIR_READ_ROWS
 * rows is counted again in narrower ranges; the keys of the others are
 * read through the key's index, a chunk's worth at a time, and the keys
 * that one side lacks are repaired.  So neither side hashes or ships a row
 * that did not change, and memory holds a chunk and, for each level, the
 * counts of 2^REPAIR_RANGE_BITS ranges.
 *
 * It relies on the target holding what the job wrote: a row changed on the
 * target alone, with its key kept, is not seen.  all_rows compares every
 * row instead, as does a job whose start is not known.
 */
#define REPAIR_RANGE_BITS 14
#define REPAIR_READ_ROWS 1000

/*
 * The settings of a transaction of the short way, until
 * tools_restore_settings() with the level returned: the styles of text
 * (tools_fix_style()), and no JIT: its statements scan every key with a
 * cheap expression, or many ranges of a few, and compiling them would cost
 * more than it saves.
 */
static int
repair_settings(void)
{
	int			level = tools_fix_style();

	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * Keys of the rows written on the source since transaction xid, the next
 * at most chunk after *after (NULL: from the first), into keys, in order:
 * a postgres_fdw source's server reads them, where rs->changed_sent says
 * so from a statement sent before (tools_remote_send_changed()).
 */
static int64
changed_keys(RepairState *rs, const char *xid, const Datum *after,
			 Datum *keys)
{
	ToolsJob   *job = &rs->job;
	Oid			types[2] = {TEXTOID, job->keys[0].type};
	Datum		values[2];
	int64		n;
	int64		i;
	bool		isnull;

	if (job->source_foreign)
	{
		if (!rs->changed_sent)
			tools_remote_send_changed(job, xid, after, rs->chunk, rs->cxt);
		rs->changed_sent = false;
		return tools_remote_changed_keys(job, rs->chunk, keys);
	}
	values[0] = CStringGetTextDatum(xid);
	values[1] = after != NULL ? after[0] : (Datum) 0;
	n = tools_execute(tools_changed_keys_sql(job, job->source_name,
											 job->keys[0].name, after != NULL,
											 rs->chunk),
					  after != NULL ? 2 : 1, types, values, NULL, SPI_OK_SELECT);
	for (i = 0; i < n; i++)
		keys[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								1, &isnull);
	return n;
}

/* Repair the rows of some keys of the job's range, n at most chunk. */
static void
repair_keys(RepairState *rs, Datum *keys, int64 n, int64 *counts)
{
	repair_statement(rs, range_params(&rs->job), false, false,
					 keys_array_sql(rs, keys, n), counts);
}

/*
 * Repair the rows written on the source since transaction xid, a chunk of
 * keys at a time, each in a transaction of its own.
 */
static void
repair_written(RepairState *rs, const char *xid)
{
	ToolsJob   *job = &rs->job;
	Datum		last = (Datum) 0;
	bool		after = false;
	int64		n;

	do
	{
		CHECK_FOR_INTERRUPTS();
		tools_connect_nonatomic();
		rs->level = rs->settings();
		n = changed_keys(rs, xid, after ? &last : NULL, rs->differ);
		if (n > 0)
		{
			int64		c[3];

			repair_keys(rs, rs->differ, n, c);
			ereport(DEBUG1,
					(errmsg_plural("tools job %lld: %lld row written on %s since the copy, from key %s, repaired; rows: %lld missing, %lld extra, %lld changed",
								   "tools job %lld: %lld rows written on %s since the copy, from key %s, repaired; rows: %lld missing, %lld extra, %lld changed",
								   (unsigned long) n,
								   (long long) job->job_id, (long long) n,
							job->source_name,
							tools_key_string(job, &rs->differ[0]),
							(long long) c[2], (long long) c[0],
							(long long) c[1])));
			last = rs->differ[n - 1];
			after = true;
			rs->written += n;
		}
		tools_restore_settings(rs->level);
		tools_commit_and_finish();
		MemoryContextReset(rs->chunk_cxt);
	} while (n == rs->chunk);
}

/* The key of the job on one side, as written in its statements. */
static const char *
key_sql(RepairState *rs, bool target)
{
	ToolsKeyColumn *key = &rs->job.keys[0];

	return target ? key->target_expr : key->name;
}

/*
 * The smallest and the largest key of the job's range on one side, into
 * lo and hi, widening what they hold where any is set.
 */
static void
key_span(RepairState *rs, bool target, int64 *lo, int64 *hi, bool *any)
{
	ToolsJob   *job = &rs->job;
	const char *key = key_sql(rs, target);
	SPIPlanPtr	plan;
	bool		isnull;
	int64		v;

	plan = prepare_range(job, tools_range_sql(job,
											  psprintf("pg_catalog.min(%s)::pg_catalog.int8,"
													   " pg_catalog.max(%s)::pg_catalog.int8",
													   key, key),
											  false, false, target));
	reading_target = target;
	tools_execute_plan(plan, range_params(job), false, SPI_OK_SELECT);
	reading_target = false;
	v = DatumGetInt64(tools_result_value(1, &isnull));
	if (!isnull)
	{
		*lo = *any ? Min(*lo, v) : v;
		v = DatumGetInt64(tools_result_value(2, &isnull));
		*hi = *any ? Max(*hi, v) : v;
		*any = true;
	}
	SPI_freeplan(plan);
}

/*
 * The parameters of a statement on the keys from a to b: the job's part,
 * and a - 1 as the lower end where the key's type has a key below a.
 */
static ParamListInfo
span_params(RepairState *rs, int64 a, int64 b, bool *lower)
{
	ToolsJob   *job = &rs->job;
	ParamListInfo params = range_params(job);
	int64		min = job->keys[0].type == INT2OID ? PG_INT16_MIN :
		job->keys[0].type == INT4OID ? PG_INT32_MIN : PG_INT64_MIN;

	*lower = a > min;
	if (*lower)
	{
		params->params[PARAM_LAST(job, 0)].value = tools_int64_key(job, a - 1);
		params->params[PARAM_LAST(job, 0)].isnull = false;
	}
	params->params[PARAM_UPPER(job, 0)].value = tools_int64_key(job, b);
	params->params[PARAM_UPPER(job, 0)].isnull = false;
	return params;
}

/* The first and the last key of range r of 2^shift keys, within a to b. */
static void
range_ends(int64 r, int shift, int64 a, int64 b, int64 *first, int64 *last)
{
	*first = Max(a, r * ((int64) 1 << shift));
	if (pg_add_s64_overflow(r * ((int64) 1 << shift), ((int64) 1 << shift) - 1, last) ||
		*last > b)
		*last = b;
}

/*
 * Read a statement's rows of two int8 columns (a range and its count) into
 * arrays in cxt that grow as needed.
 */
static int64
read_counts(Portal portal, bool target, int64 **ranges, int64 **counts,
			MemoryContext cxt)
{
	int64		n = 0;
	int64		size = 1024;
	uint64		row;
	bool		isnull;

	*ranges = MemoryContextAlloc(cxt, sizeof(int64) * size);
	*counts = MemoryContextAlloc(cxt, sizeof(int64) * size);
	reading_target = target;
	do
	{
		SPI_cursor_fetch(portal, true, REPAIR_FETCH_ROWS);
		for (row = 0; row < SPI_processed; row++)
		{
			if (n == size)
			{
				size *= 2;
				*ranges = repalloc(*ranges, sizeof(int64) * size);
				*counts = repalloc(*counts, sizeof(int64) * size);
			}
			(*ranges)[n] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[row],
													   SPI_tuptable->tupdesc, 1, &isnull));
			(*counts)[n] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[row],
													   SPI_tuptable->tupdesc, 2, &isnull));
			n++;
		}
		SPI_freetuptable(SPI_tuptable);
	} while (SPI_processed == REPAIR_FETCH_ROWS);
	SPI_cursor_close(portal);
	reading_target = false;
	return n;
}

/* One key range more, its first and its last key, in two bigint arrays. */
static void
append_range(StringInfo firsts, StringInfo lasts, int64 first, int64 last)
{
	appendStringInfo(firsts, "%s%lld", firsts->len > 0 ? "," : "{", (long long) first);
	appendStringInfo(lasts, "%s%lld", lasts->len > 0 ? "," : "{", (long long) last);
}

/*
 * Whether one side's keys are counted range by range through the key's
 * index (TOOLS_KEY_INDEXED_SQL, asked where the side is): not for a job
 * with a condition, which the ranges' statement leaves out.
 */
static bool
key_indexed(RepairState *rs, bool target)
{
	ToolsJob   *job = &rs->job;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		isnull;

	if (job->condition != NULL)
		return false;
	if (!target && job->source_foreign)
		return tools_remote_key_indexed(job, rs->cxt);
	values[0] = CStringGetTextDatum(target ? job->target_name : job->source_name);
	values[1] = CStringGetTextDatum(key_sql(rs, target));
	tools_execute(TOOLS_KEY_INDEXED_SQL, 2, types, values, NULL, SPI_OK_SELECT);
	return DatumGetBool(tools_result_value(1, &isnull)) && !isnull;
}

/*
 * The statement that counts one side's keys from a to b in ranges of
 * 2^shift keys in one pass over its rows, grouped by the key shifted
 * right, with its parameters.
 */
static SPIPlanPtr
group_counts_plan(RepairState *rs, bool target, int64 a, int64 b, int shift,
				  ParamListInfo *params)
{
	ToolsJob   *job = &rs->job;
	SPIPlanPtr	plan;
	bool		lower;

	*params = span_params(rs, a, b, &lower);
	plan = SPI_prepare_cursor(psprintf("%s GROUP BY 1",
									   tools_range_sql(job,
													   psprintf("%s::pg_catalog.int8 OPERATOR(pg_catalog.>>) %d,"
																" pg_catalog.count(*)",
																key_sql(rs, target), shift),
													   lower, true, target)),
							  NUM_PARAMS(job), tools_param_types(job),
							  CURSOR_OPT_CUSTOM_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * Count one side's keys here: range by range through the key's index
 * (rs->by_index, the ranges as firsts and lasts), or grouped in one pass;
 * into c (its arrays made in cxt), as they come.
 */
static void
local_counts(RepairState *rs, bool target, const char *firsts,
			 const char *lasts, RangeCounts *c, MemoryContext cxt)
{
	ToolsJob   *job = &rs->job;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(firsts), CStringGetTextDatum(lasts)};
	SPIPlanPtr	plan = NULL;
	ParamListInfo params;
	Portal		portal;

	if (rs->by_index[target])
		portal = SPI_cursor_open_with_args(NULL,
										   tools_range_counts_sql(target ? job->target_name : job->source_name,
																  key_sql(rs, target)),
										   2, types, values, NULL, false, 0);
	else
	{
		plan = group_counts_plan(rs, target, c->a, c->b, c->shift, &params);
		portal = SPI_cursor_open_with_paramlist(NULL, plan, params, false);
	}
	c->n = read_counts(portal, target, &c->ranges, &c->counts, cxt);
	if (plan != NULL)
		SPI_freeplan(plan);
}

/*
 * Have a postgres_fdw source's server count its keys over the job's second
 * connection, as local_counts() would here, into c's range; false, having
 * sent nothing, where it cannot.  Its counts come with
 * tools_remote_int8s().
 */
static bool
send_counts(RepairState *rs, const char *firsts, const char *lasts,
			const RangeCounts *c)
{
	ToolsJob   *job = &rs->job;
	SPIPlanPtr	plan;
	ParamListInfo params;
	bool		sent;

	if (rs->by_index[0])
	{
		sent = tools_remote_send_ranges(job, tools_range_counts_sql, firsts,
										lasts, true, rs->cxt);
		rs->by_index[0] = sent;
		if (sent)
			return true;
	}
	plan = group_counts_plan(rs, false, c->a, c->b, c->shift, &params);
	SPI_keepplan(plan);			/* postgres_fdw's plan is looked at in it */
	sent = tools_remote_send(job, plan, params, true, rs->cxt);
	SPI_freeplan(plan);
	return sent;
}

/*
 * One side's counts as the ranges' numbers, ascending: a range counted
 * through the index comes as its first key, and empty ones come too.
 */
static void
settle_counts(RepairState *rs, bool target, RangeCounts *c)
{
	int64		i;
	int64		kept = 0;

	if (rs->by_index[target])
	{
		for (i = 0; i < c->n; i++)
		{
			if (c->counts[i] == 0)
				continue;
			c->ranges[kept] = c->ranges[i] >> c->shift;
			c->counts[kept++] = c->counts[i];
		}
		c->n = kept;
	}
	sort_pairs(c->ranges, c->counts, c->n);
}

/*
 * Count the keys from a to b on both sides in ranges of 2^shift keys, into
 * sides (the source's, then the target's; arrays made in cxt).  A
 * postgres_fdw source's server counts its side over the job's second
 * connection while this one counts the target's.
 *
 * With xid, the rows written on the source since that transaction are
 * repaired after the target's keys are counted (repair_written()), and
 * each repair statement folds the keys it deleted and inserted into the
 * target's counts: a postgres_fdw source's server reads those rows over
 * the job's first connection while both sides count, so that the counts
 * cost no time of their own.  The counts compare as they would if the
 * target had been counted after the repair.
 */
static void
span_counts(RepairState *rs, int64 a, int64 b, int shift, const char *xid,
			RangeCounts *sides, MemoryContext cxt)
{
	ToolsJob   *job = &rs->job;
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	StringInfoData firsts;
	StringInfoData lasts;
	bool		remote;
	int64		r;
	int			level;
	int			side;

	for (side = 0; side < 2; side++)
	{
		sides[side].a = a;
		sides[side].b = b;
		sides[side].shift = shift;
	}
	initStringInfo(&firsts);
	initStringInfo(&lasts);
	for (r = a >> shift; r <= b >> shift; r++)
	{
		int64		first;
		int64		last;

		range_ends(r, shift, a, b, &first, &last);
		append_range(&firsts, &lasts, first, last);
	}
	appendStringInfoChar(&firsts, '}');
	appendStringInfoChar(&lasts, '}');

	tools_connect_nonatomic();
	level = repair_settings();
	remote = job->source_foreign &&
		send_counts(rs, firsts.data, lasts.data, &sides[0]);
	if (xid != NULL && job->source_foreign)
	{
		tools_remote_send_changed(job, xid, NULL, rs->chunk, rs->cxt);
		rs->changed_sent = true;
	}
	local_counts(rs, true, firsts.data, lasts.data, &sides[1], cxt);
	settle_counts(rs, true, &sides[1]);
	if (!remote)
	{
		local_counts(rs, false, firsts.data, lasts.data, &sides[0], cxt);
		settle_counts(rs, false, &sides[0]);
	}
	tools_restore_settings(level);
	tools_commit_and_finish();
	pfree(firsts.data);
	pfree(lasts.data);

	if (xid != NULL)
	{
		rs->deltas = &sides[1];
		repair_written(rs, xid);
		rs->deltas = NULL;
	}
	if (remote)
	{
		sides[0].n = tools_remote_int8s(job, true, &sides[0].ranges,
										&sides[0].counts, cxt);
		settle_counts(rs, false, &sides[0]);
	}
	MemoryContextSwitchTo(oldcxt);
}

/*
 * The next step of a merge of two ascending int64 arrays, a at i and b at
 * j: -1 where a's value comes first, 1 where b's, 0 where they are equal,
 * 2 at the end of both.
 */
static int
merge_next(const int64 *a, int64 na, int64 i, const int64 *b, int64 nb,
		   int64 j)
{
	if (i == na && j == nb)
		return 2;
	if (j == nb || (i < na && a[i] < b[j]))
		return -1;
	if (i == na || b[j] < a[i])
		return 1;
	return 0;
}

/*
 * The keys of one side within some key ranges (tools_range_keys_sql(), the
 * ranges' first and last keys as bigint arrays in text), read here.
 */
static int64
range_keys(RepairState *rs, bool target, const char *firsts,
		   const char *lasts, int64 **keys)
{
	ToolsJob   *job = &rs->job;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(firsts), CStringGetTextDatum(lasts)};

	int64		n;
	uint64		row;
	bool		isnull;

	reading_target = target;
	n = tools_execute(tools_range_keys_sql(target ? job->target_name : job->source_name,
										   key_sql(rs, target)),
					  2, types, values, NULL, SPI_OK_SELECT);
	reading_target = false;
	*keys = MemoryContextAlloc(rs->chunk_cxt, sizeof(int64) * Max(n, 1));
	for (row = 0; row < n; row++)
		(*keys)[row] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[row],
												   SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/*
 * Read the keys of some ranges of 2^shift keys within a to b (numbers, n
 * of them, in order) on both sides, each range through the key's index,
 * and repair the keys that one side has and the other lacks, a chunk of
 * them to a statement.  Adds what it did to total.  Keys outside the
 * job's range or condition may be read too: the repair statements leave
 * them alone.
 */
static void
repair_ranges(RepairState *rs, int64 a, int64 b, int shift,
			  const int64 *ranges, int64 n, int64 *total)
{
	ToolsJob   *job = &rs->job;
	StringInfoData firsts;
	StringInfoData lasts;
	int64	   *keys[2];
	int64		nkeys[2];
	int64		i = 0;
	int64		j = 0;
	int64		k;
	int64		ndiffer = 0;
	bool		remote;

	/* Each run of adjacent ranges as one key range. */
	initStringInfo(&firsts);
	initStringInfo(&lasts);
	for (k = 0; k < n; k++)
	{
		int64		first;
		int64		last;
		int64		ignored;

		range_ends(ranges[k], shift, a, b, &first, &ignored);
		while (k + 1 < n && ranges[k + 1] == ranges[k] + 1)
			k++;
		range_ends(ranges[k], shift, a, b, &ignored, &last);
		append_range(&firsts, &lasts, first, last);
	}
	appendStringInfoChar(&firsts, '}');
	appendStringInfoChar(&lasts, '}');

	/* A postgres_fdw source's server reads its side meanwhile. */
	remote = job->source_foreign &&
		tools_remote_send_ranges(job, tools_range_keys_sql, firsts.data,
								 lasts.data, false, rs->cxt);
	nkeys[1] = range_keys(rs, true, firsts.data, lasts.data, &keys[1]);
	if (remote)
		nkeys[0] = tools_remote_int8s(job, false, &keys[0], NULL,
									  rs->chunk_cxt);
	else
		nkeys[0] = range_keys(rs, false, firsts.data, lasts.data, &keys[0]);
	pfree(firsts.data);
	pfree(lasts.data);
	qsort(keys[0], nkeys[0], sizeof(int64), int64_order);
	qsort(keys[1], nkeys[1], sizeof(int64), int64_order);

	for (;;)
	{
		int			step = merge_next(keys[0], nkeys[0], i, keys[1], nkeys[1], j);
		bool		end = step == 2;

		if (step < 0)
			rs->differ[ndiffer++] = tools_int64_key(job, keys[0][i++]);
		else if (step == 1)
			rs->differ[ndiffer++] = tools_int64_key(job, keys[1][j++]);
		else if (step == 0)
		{
			i++;
			j++;
		}
		if (ndiffer > 0 && (ndiffer == rs->chunk || end))
		{
			int64		c[3];

			repair_keys(rs, rs->differ, ndiffer, c);
			for (k = 0; k < 3; k++)
				total[k] += c[k];
			ndiffer = 0;
		}
		if (end)
			break;
	}
	pfree(keys[0]);
	pfree(keys[1]);
}

/*
 * Compare the keys from a to b on both sides, counted in ranges of 2^shift
 * keys (at most 2^REPAIR_RANGE_BITS of them), each closer look at the
 * ranges whose counts differ in a transaction of its own (the counts only
 * say where to look: the repair statements compare what they write).
 * With xid, the rows written since are repaired first (span_counts()).
 */
static void
repair_span(RepairState *rs, int64 a, int64 b, int shift, const char *xid)
{
	ToolsJob   *job = &rs->job;
	MemoryContext cxt = AllocSetContextCreate(rs->cxt, "tools repair counts",
											  ALLOCSET_DEFAULT_SIZES);
	RangeCounts sides[2];
	int64	   *ranges[2];
	int64	   *counts[2];
	int64		n[2];
	int64	   *group;
	int64		ngroup = 0;
	int64		rows = 0;
	int64		ndiffer = 0;
	int64		i = 0;
	int64		j = 0;
	int64		total[3] = {0, 0, 0};

	span_counts(rs, a, b, shift, xid, sides, cxt);
	for (i = 0; i < 2; i++)
	{
		ranges[i] = sides[i].ranges;
		counts[i] = sides[i].counts;
		n[i] = sides[i].n;
	}
	i = 0;

	group = MemoryContextAlloc(cxt, sizeof(int64) * Max(n[0] + n[1], 1));
	for (;;)
	{
		int			step = merge_next(ranges[0], n[0], i, ranges[1], n[1], j);
		bool		end = step == 2;
		int64		r = 0;
		int64		size = 0;

		CHECK_FOR_INTERRUPTS();
		if (step < 0)
		{
			r = ranges[0][i];
			size = counts[0][i++];
		}
		else if (step == 1)
		{
			r = ranges[1][j];
			size = counts[1][j++];
		}
		else if (step == 0 && counts[0][i++] != counts[1][j++])
		{
			r = ranges[0][i - 1];
			size = Max(counts[0][i - 1], counts[1][j - 1]);
		}
		else if (step == 0)
			continue;

		/* The group so far, before it outgrows a chunk, and at the end. */
		if (ngroup > 0 && (end || rows + size > rs->chunk))
		{
			tools_connect_nonatomic();
			rs->level = rs->settings();
			repair_ranges(rs, a, b, shift, group, ngroup, total);
			tools_restore_settings(rs->level);
			tools_commit_and_finish();
			ngroup = 0;
			rows = 0;
		}
		if (end)
			break;
		if (size > REPAIR_READ_ROWS && shift > 0)
		{
			int64		first;
			int64		last;

			range_ends(r, shift, a, b, &first, &last);
			repair_span(rs, first, last, Max(0, shift - REPAIR_RANGE_BITS), NULL);
			continue;
		}
		group[ngroup++] = r;
		rows += size;
		ndiffer++;
	}
	MemoryContextDelete(cxt);
	if (ndiffer == 0)
		return;
	rs->chunks += ndiffer;
	ereport(DEBUG1,
			(errmsg_plural("tools job %lld: keys from %lld to %lld: %lld range of width %lld differed in its counts, repaired; rows: %lld missing, %lld extra, %lld changed",
						   "tools job %lld: keys from %lld to %lld: %lld ranges of width %lld differed in their counts, repaired; rows: %lld missing, %lld extra, %lld changed",
						   (unsigned long) ndiffer,
						   (long long) job->job_id, (long long) a, (long long) b,
					(long long) ndiffer, (long long) 1 << shift,
					(long long) total[2], (long long) total[0],
					(long long) total[1])));
}

/*
 * The short way, where it applies: true when it repaired the job's range,
 * false when the job must be compared row by row.  since is where the
 * source stood when the copy, or the last repair, began; now, where it
 * stands.  The rows written since are repaired by their keys, and the keys
 * of both sides counted in ranges over their span, as few levels of it as
 * 2^REPAIR_RANGE_BITS ranges allow, find the rest (repair_span()).
 */
static bool
repair_since(RepairState *rs, const ToolsSnapshot *since,
			 const ToolsSnapshot *now)
{
	ToolsJob   *job = &rs->job;
	char	   *xid = psprintf("%u", (uint32) since->xmin);
	bool		any = false;
	int64		lo = 0;
	int64		hi = 0;
	int			shift = 0;
	int			level;

	if (!job->integer_key)
		return false;

	/*
	 * Rows that another relation holds since the copy (a foreign table
	 * pointed elsewhere, a server restored from a dump) may be older and
	 * differ all the same.
	 */
	if (now->system != since->system || now->relation != since->relation)
	{
		ereport(NOTICE,
				(errmsg("tools job %lld: %s is not the relation its copy read, so every row of its range is compared",
						(long long) job->job_id, job->source_name),
				 errdetail("The copy read relation %u of database %u on the server with system identifier %llu; it is now relation %u of database %u on the server with system identifier %llu.",
						   (Oid) since->relation, (Oid) (since->relation >> 32),
						   (unsigned long long) since->system,
						   (Oid) now->relation, (Oid) (now->relation >> 32),
						   (unsigned long long) now->system)));
		return false;
	}

	/* age() compares within 2^31 transactions: well within, or not at all. */
	if (now->xmin < since->xmin || now->xmax - since->xmin >= ((int64) 1 << 30))
		return false;

	tools_connect_nonatomic();
	level = repair_settings();
	key_span(rs, false, &lo, &hi, &any);
	key_span(rs, true, &lo, &hi, &any);
	rs->by_index[0] = key_indexed(rs, false);
	rs->by_index[1] = key_indexed(rs, true);
	tools_restore_settings(level);
	tools_commit_and_finish();
	ereport(DEBUG1,
			(errmsg("tools job %lld counts the keys of %s %s, and those of %s %s",
					(long long) job->job_id, job->source_name,
					rs->by_index[0] ? "range by range through its index" : "in one pass over its rows",
					job->target_name,
					rs->by_index[1] ? "range by range through its index" : "in one pass over its rows")));
	while (any && shift < 62 &&
		   (double) (hi >> shift) - (double) (lo >> shift) >= (double) (1 << REPAIR_RANGE_BITS))
		shift++;
	if (any)
		repair_span(rs, lo, hi, shift, xid);
	else
		repair_written(rs, xid);
	return true;
}

/*
 * Compare, and repair where it differs, one completed job's range: the
 * short way (repair_since()) where since, where the source stood when the
 * copy or the last repair began, is known and all_rows is not set;
 * otherwise row by row, a chunk at a time.  Where the source stands now is
 * recorded once the range is repaired, for the next call.
 */
static void
repair_job(RepairState *rs, const ToolsSnapshot *since, bool all_rows)
{
	ToolsJob   *job = &rs->job;
	ToolsSnapshot now = {0};
	bool		known;
	bool		short_way;
	bool		differed;
	int			k;

	rs->cmp = MemoryContextAlloc(rs->cxt, sizeof(FmgrInfo) * job->nkeys);
	for (k = 0; k < job->nkeys; k++)
		fmgr_info_cxt(lookup_type_cache(job->keys[k].type,
										TYPECACHE_CMP_PROC)->cmp_proc,
					  &rs->cmp[k], rs->cxt);
	rs->chunk_cxt = AllocSetContextCreate(rs->cxt, "tools repair chunk",
										  ALLOCSET_DEFAULT_SIZES);
	rs->chunk = tools_repair_chunk;
	rs->source.keys = MemoryContextAlloc(rs->cxt, sizeof(Datum) * job->nkeys * rs->chunk);
	rs->source.hashes = MemoryContextAlloc(rs->cxt, sizeof(int64) * rs->chunk);
	rs->target.keys = MemoryContextAlloc(rs->cxt, sizeof(Datum) * job->nkeys * rs->chunk);
	rs->target.hashes = MemoryContextAlloc(rs->cxt, sizeof(int64) * rs->chunk);
	rs->differ = MemoryContextAlloc(rs->cxt, sizeof(Datum) * job->nkeys * 2 * rs->chunk);

	tools_connect_nonatomic();
	known = tools_source_snapshot(job, &now, rs->cxt);
	tools_commit_and_finish();
	rs->settings = repair_settings;
	short_way = !all_rows && since != NULL && known &&
		repair_since(rs, since, &now);
	rs->settings = tools_fix_style;
	if (!short_way && tools_use_windows(job))
	{
		tools_connect_nonatomic();
		rs->windows = window_span(rs);
		tools_commit_and_finish();
	}
	if (!short_way)
		elog(DEBUG1, "tools job %lld compares every row of its range%s",
			 (long long) job->job_id,
			 rs->windows ? ", in windows of key values" : "");
	while (!short_way && !rs->done)
	{
		CHECK_FOR_INTERRUPTS();
		tools_connect_nonatomic();
		rs->level = rs->settings();
		repair_chunk(rs);
		tools_restore_settings(rs->level);
		tools_commit_and_finish();
		MemoryContextReset(rs->chunk_cxt);
	}

	differed = rs->chunks > 0 || rs->missing + rs->extra + rs->changed > 0;
	tools_connect_nonatomic();
	/* Rows inserted or updated may hold larger values of its sequences. */
	if (differed && job->sequences && tools_has_sequences(job))
		tools_set_sequences(job);
	{
		Oid			types[4] = {INT8OID, INT8OID, INT8OID, INT8OID};
		Datum		values[4] = {Int64GetDatum(job->job_id),
			Int64GetDatum(now.xmin), Int64GetDatum(now.system),
		Int64GetDatum(now.relation)};
		char		nulls[4] = {' ', known ? ' ' : 'n', known ? ' ' : 'n',
		known ? ' ' : 'n'};

		tools_execute("UPDATE " TOOLS_SCHEMA ".job SET repaired = pg_catalog.clock_timestamp(),"
					  " source_xmin = COALESCE($2, source_xmin),"
					  " source_system = COALESCE($3, source_system),"
					  " source_relation = COALESCE($4, source_relation)"
					  " WHERE job_id OPERATOR(pg_catalog.=) $1",
					  4, types, values, nulls, SPI_OK_UPDATE);
	}
	tools_commit_and_finish();

	if (!differed && short_way)
		ereport(NOTICE,
				(errmsg_plural("tools job %lld: %s equals %s in the job's range: in the %lld row written on the source since the copy, and in the keys of both sides",
							   "tools job %lld: %s equals %s in the job's range: in the %lld rows written on the source since the copy, and in the keys of both sides",
							   (unsigned long) rs->written,
							   (long long) job->job_id, job->target_name,
						job->source_name, (long long) rs->written)));
	else if (!differed)
		ereport(NOTICE,
				(errmsg("tools job %lld: %s equals %s in the job's range",
						(long long) job->job_id, job->target_name, job->source_name)));
	else if (short_way)
		ereport(NOTICE,
				(errmsg("tools job %lld: %s differed from %s and now equals it; rows: %lld missing, %lld extra, %lld changed; read: the rows written on the source since the copy (%lld) and the keys of the ranges whose counts differed (%lld)",
						(long long) job->job_id, job->target_name,
						job->source_name,
						(long long) rs->missing, (long long) rs->extra,
						(long long) rs->changed, (long long) rs->written,
						(long long) rs->chunks)));
	else
		ereport(NOTICE,
				(errmsg_plural("tools job %lld: %s differed from %s in %lld key range of up to %d rows and now equals it; rows: %lld missing, %lld extra, %lld changed",
							   "tools job %lld: %s differed from %s in %lld key ranges of up to %d rows and now equals it; rows: %lld missing, %lld extra, %lld changed",
							   (unsigned long) rs->chunks,
							   (long long) job->job_id, job->target_name,
							   job->source_name, (long long) rs->chunks,
							   rs->chunk, (long long) rs->missing,
							   (long long) rs->extra,
							   (long long) rs->changed)));
}

/*
 * Add back, one step to a transaction, the foreign keys that the repairs of
 * run run_id dropped (tools_defer_foreign_keys()), or that a failed repair
 * left dropped, on its targets: each is added NOT VALID, then validated.
 * A key whose tables' jobs of the run have not all completed is left to
 * those jobs.
 */
static void
restore_foreign_keys(int64 run_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(run_id)};
	MemoryContext cxt = CurrentMemoryContext;
	ToolsJob	job;
	Oid		   *targets;
	uint64		n;
	uint64		i;
	bool		more;
	bool		isnull;

	tools_connect_nonatomic();
	n = tools_execute("SELECT DISTINCT c.target::pg_catalog.oid" TOOLS_JOB_FROM
					  " WHERE j.run_id OPERATOR(pg_catalog.=) $1",
					  1, types, values, NULL, SPI_OK_SELECT);
	targets = MemoryContextAlloc(cxt, sizeof(Oid) * Max(n, 1));
	for (i = 0; i < n; i++)
		targets[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1,
													&isnull));
	tools_commit_and_finish();

	memset(&job, 0, sizeof(job));
	job.run_id = run_id;
	for (i = 0; i < n; i++)
	{
		job.target = targets[i];
		do
		{
			CHECK_FOR_INTERRUPTS();
			tools_connect_nonatomic();
			more = tools_may_read("deferred_constraint") &&
				tools_restore_constraint(&job);
			tools_commit_and_finish();
		} while (more);
	}
}

/*
 * Take the job's lock for this repair of run run_id: false where another
 * repair of the run holds it, which repairs the job (said in a NOTICE,
 * unless quiet).  Any other holder, a tools.start() of the job, fails the
 * call.
 */
static bool
claim_job(int64 run_id, int64 job_id, LOCKTAG *tag, bool quiet)
{
	Oid			types[4] = {INT8OID, INT8OID, INT4OID, INT4OID};
	Datum		values[4];
	int			pid = 0;
	bool		isnull;

	TOOLS_SET_LOCKTAG(*tag, job_id, TOOLS_JOB_LOCK_SPACE);
	if (LockAcquire(tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
		return true;

	values[0] = Int64GetDatum(run_id);
	values[1] = Int64GetDatum(job_id);
	values[2] = Int32GetDatum(TOOLS_REPAIRING_LOCK_SPACE);
	values[3] = Int32GetDatum(TOOLS_JOB_LOCK_SPACE);
	tools_connect_nonatomic();
	if (tools_execute("WITH held AS " TOOLS_HELD_LOCKS_SQL
					  " SELECT j.pid FROM held AS j"
					  " WHERE j.space OPERATOR(pg_catalog.=) $4"
					  " AND j.id OPERATOR(pg_catalog.=) $2 AND"
					  TOOLS_REPAIRING_SQL("j.pid", "$1", "$3") " LIMIT 1",
					  4, types, values, NULL, SPI_OK_SELECT) > 0)
		pid = DatumGetInt32(tools_result_value(1, &isnull));
	SPI_finish();
	if (pid == 0)
	{
		/* Fails naming the holder, unless it has let go meanwhile. */
		tools_lock_job(job_id, tag);
		return true;
	}
	if (!quiet)
		ereport(NOTICE,
				(errmsg("tools job %lld is being repaired by another call: this call leaves it to that one",
						(long long) job_id)));
	return false;
}

/*
 * Repair one job of run run_id, in cxt, unless another repair of the run
 * holds it or has repaired it since this call began, at began; quiet,
 * without a NOTICE for either, nor for a job it cannot repair.
 */
static void
repair_one(int64 run_id, int64 job_id, TimestampTz began, bool all_rows,
		   bool quiet, MemoryContext cxt)
{
	RepairState *rs = palloc0(sizeof(RepairState));
	ErrorContextCallback errcb;
	LOCKTAG		tag;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job_id)};
	bool		completed;
	bool		isnull;
	bool		since_null[3];
	bool		repaired_null;
	TimestampTz repaired;
	ToolsSnapshot since;

	if (!claim_job(run_id, job_id, &tag, quiet))
		return;
	rs->cxt = cxt;
	errcb.callback = range_error_context;
	errcb.arg = &rs->job;
	errcb.previous = error_context_stack;
	PG_TRY();
	{
		tools_connect_nonatomic();
		if (tools_execute("SELECT " TOOLS_JOB_COLUMNS ", j.state OPERATOR(pg_catalog.=) 'completed',"
						  " j.source_xmin, j.source_system, j.source_relation, j.repaired"
						  TOOLS_JOB_FROM " WHERE j.job_id OPERATOR(pg_catalog.=) $1",
						  1, types, values, NULL, SPI_OK_SELECT) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("job %lld was deleted while its run was repaired",
							(long long) job_id),
					 errhint("Plan a new run with tools.run().")));
		tools_job_from_row(&rs->job, SPI_tuptable->vals[0],
						   SPI_tuptable->tupdesc, cxt);
		completed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc,
											   TOOLS_JOB_NCOLUMNS + 1,
											   &isnull));
		since.xmin = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc,
												 TOOLS_JOB_NCOLUMNS + 2,
												 &since_null[0]));
		since.system = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc,
												   TOOLS_JOB_NCOLUMNS + 3,
												   &since_null[1]));
		since.relation = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc,
													 TOOLS_JOB_NCOLUMNS + 4,
													 &since_null[2]));
		repaired = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc,
													 TOOLS_JOB_NCOLUMNS + 5,
													 &repaired_null));
		MemoryContextSwitchTo(cxt);
		if (!repaired_null && repaired >= began)
		{
			SPI_finish();
			if (!quiet)
				ereport(NOTICE,
						(errmsg("tools job %lld was repaired by another call since this one began",
								(long long) job_id)));
		}
		else
		{
			tools_describe_job(&rs->job);
			tools_check_target_writer(&rs->job, 0, true,
									  psprintf("repairing job %lld meanwhile could undo its rows",
											   (long long) rs->job.job_id),
									  "tools.repair()");
			SPI_finish();
			MemoryContextSwitchTo(cxt);

			error_context_stack = &errcb;
			if (rs->job.nkeys > 0 && completed)
				repair_job(rs,
						   since_null[0] || since_null[1] || since_null[2] ? NULL : &since,
						   all_rows);
			else if (!quiet && rs->job.nkeys == 0)
				ereport(NOTICE,
						(errmsg("tools job %lld has no key: a range of it cannot be copied again",
								(long long) rs->job.job_id),
						 errhint("Plan a run of its target with trunc to copy it again whole.")));
			else if (!quiet)
				ereport(NOTICE,
						(errmsg("tools job %lld has not completed: it is left to tools.start()",
								(long long) rs->job.job_id),
						 errhint("CALL tools.start(%lld) copies the rest of it; repair it once it has completed.",
								 (long long) rs->job.job_id)));
			error_context_stack = errcb.previous;
		}
	}
	PG_FINALLY();
	{
		tools_remote_close(&rs->job);
		LockRelease(&tag, ExclusiveLock, true);
	}
	PG_END_TRY();
}

/*
 * Repair the jobs of run run_id (job_ids, njobs of them), sharing them
 * with the other calls of the run made at once, for a call that began at
 * began.
 */
static void
repair_run(int64 run_id, const int64 *job_ids, uint64 njobs,
		   TimestampTz began, bool all_rows, MemoryContext cxt)
{
	uint64		i;

	TOOLS_SET_LOCKTAG(repair_lock, run_id, TOOLS_REPAIR_LOCK_SPACE);
	PG_TRY();
	{
		(void) LockAcquire(&repair_lock, ShareLock, true, false);
		repair_lock_mode = ShareLock;
		for (i = 0; i < njobs; i++)
			repair_one(run_id, job_ids[i], began, all_rows, false, cxt);
	}
	PG_FINALLY();
	{
		release_repair_lock();
	}
	PG_END_TRY();

	/*
	 * Each call lets go before it looks: of calls ending together, at least
	 * one finds none of the others (one waiting for the lock alone ends
	 * later).  That one repairs the jobs that no call has repaired since it
	 * began, which a call it left them to was stopped or failed in, quietly
	 * for the others, then adds back the foreign keys.
	 */
	if (LockAcquire(&repair_lock, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
	{
		repair_lock_mode = ExclusiveLock;
		PG_TRY();
		{
			for (i = 0; i < njobs; i++)
				repair_one(run_id, job_ids[i], began, all_rows, true, cxt);
			restore_foreign_keys(run_id);
		}
		PG_FINALLY();
		{
			release_repair_lock();
		}
		PG_END_TRY();
	}
}

PG_FUNCTION_INFO_V1(tools_repair);

/*
 * CALL tools.repair(run_id bigint DEFAULT NULL, all_rows boolean DEFAULT false)
 *
 * Calls made at once share the run's jobs: each holds the run's
 * repairing lock throughout, by which the others know it, and its repair
 * lock in share mode while it runs, leaves a job that another holds or has
 * repaired since it began, and the last to end adds back the foreign keys
 * that the calls, or a failed call, left dropped, once it has repaired
 * the jobs that a failed call left.  A call one of whose rows a foreign key
 * refuses holds that lock alone from there on (repair_alone()).
 */
Datum
tools_repair(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	int64		run_id;
	uint64		njobs;
	uint64		i;
	int64	   *job_ids;
	bool		all_rows = PG_NARGS() > 1 && !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	TimestampTz began = GetCurrentTimestamp();
	LOCKTAG		repairing;

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
	TOOLS_SET_LOCKTAG(repairing, run_id, TOOLS_REPAIRING_LOCK_SPACE);
	(void) LockAcquire(&repairing, ShareLock, true, false);
	PG_TRY();
	{
		repair_run(run_id, job_ids, njobs, began, all_rows, cxt);
	}
	PG_FINALLY();
	{
		LockRelease(&repairing, ShareLock, true);
	}
	PG_END_TRY();

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	PG_RETURN_VOID();
}
