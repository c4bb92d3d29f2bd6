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
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
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
	int64		chunks;			/* chunks that differed */
	int64		extra;			/* rows deleted: the source lacks their key */
	int64		changed;		/* rows updated */
	int64		missing;		/* rows inserted */
} RepairState;

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
												 false, target));
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
	ParamListInfo params = chunk_params(rs, NULL);
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

/*
 * Compare the next chunk of the job's range, and repair the keys that
 * differ.  The chunk ends where the first side to fill its rows
 * rows ends: the other side's rows beyond belong to the next chunk.
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
	SPIPlanPtr	plan;
	bool		isnull;
	int64		extra;
	int64		changed;
	int64		missing;
	int			k;

	read_chunk(rs, source, target);
	if (source->n == rs->chunk)
		upper = SIDE_KEY(job, source, source->n - 1);
	if (target->n == rs->chunk &&
		(upper == NULL ||
		 compare_keys(rs, SIDE_KEY(job, target, target->n - 1), upper) < 0))
		upper = SIDE_KEY(job, target, target->n - 1);

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
		plan = prepare_range(job, tools_repair_sql(job, rs->position != NULL && array == NULL,
												   upper != NULL && array == NULL,
												   source_columns(job), array));
		tools_execute_plan(plan, chunk_params(rs, upper), false, SPI_OK_SELECT);
		extra = DatumGetInt64(tools_result_value(1, &isnull));
		changed = DatumGetInt64(tools_result_value(2, &isnull));
		missing = DatumGetInt64(tools_result_value(3, &isnull));
		SPI_freeplan(plan);
		ereport(DEBUG1,
				(errmsg("tools job %lld: keys %s %s up to %s: %lld rows missing, %lld extra and %lld changed, repaired",
						(long long) job->job_id,
						rs->position == NULL ? "from" : "above",
						rs->position == NULL ? "the first" :
						tools_key_string(job, rs->position),
						upper == NULL ? "the last" :
						tools_key_string(job, upper),
						(long long) missing, (long long) extra,
						(long long) changed)));
		rs->extra += extra;
		rs->changed += changed;
		rs->missing += missing;
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

/* Compare, and repair where it differs, one completed job's range. */
static void
repair_job(RepairState *rs)
{
	ToolsJob   *job = &rs->job;
	int			level;
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
	while (!rs->done)
	{
		CHECK_FOR_INTERRUPTS();
		tools_connect_nonatomic();
		level = tools_fix_style();
		repair_chunk(rs);
		tools_restore_settings(level);
		tools_commit_and_finish();
		MemoryContextReset(rs->chunk_cxt);
	}
	/* Rows inserted or updated may hold larger values of its sequences. */
	if (rs->chunks > 0 && job->sequences)
	{
		tools_connect_nonatomic();
		if (tools_has_sequences(job))
			tools_set_sequences(job);
		tools_commit_and_finish();
	}
	if (rs->chunks == 0)
		ereport(NOTICE,
				(errmsg("tools job %lld: %s equals %s in the job's range",
						(long long) job->job_id, job->target_name, job->source_name)));
	else
		ereport(NOTICE,
				(errmsg("tools job %lld: %s differed from %s in %lld key ranges of up to %d rows: %lld rows missing, %lld extra and %lld changed, now as in the source",
						(long long) job->job_id, job->target_name,
						job->source_name, (long long) rs->chunks, rs->chunk,
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
			tools_check_target_writer(&rs->job, 0,
									  psprintf("repairing job %lld meanwhile could undo its rows",
											   (long long) rs->job.job_id),
									  "tools.repair()");
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
