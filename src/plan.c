/*-------------------------------------------------------------------------
 *
 * plan.c
 *		tools.run(targets): plan a run.
 *
 * A run is a tools.run row and one pending tools.job row per config row of
 * the chosen targets.  The function returns one CALL tools.start(N);
 * statement per job, by priority (unset last), then by config_id, for an
 * orchestrator to run.  Nothing is copied here: a plan is cheap, and the
 * jobs decide at their start what a run truncates.
 *
 * IDENTIFICATION
 *		src/plan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

#include "tools.h"

PG_MODULE_MAGIC;

/*
 * Resolve the target names as regclass input does, against the caller's
 * search_path: an unknown relation is an error naming it.  Every named
 * target must be configured.  Returns the distinct targets as an oid[].
 */
static Datum
resolve_targets(ArrayType *names)
{
	Datum	   *elems;
	int			n;
	int			i;
	Oid			types[1] = {OIDARRAYOID};
	Datum		values[1];

	if (array_contains_nulls(names))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("targets must not contain NULL")));
	deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &n);
	for (i = 0; i < n; i++)
	{
		char	   *name = TextDatumGetCString(elems[i]);
		List	   *names = NIL;

		if (!SplitIdentifierString(pstrdup(name), '.', &names) || names == NIL ||
			list_length(names) > 3)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("target \"%s\" is not a table name", name),
					 errhint("Name each target as a table, optionally schema-qualified, as in '{public.orders}'; pass '{}' for every target.")));
		elems[i] = DirectFunctionCall1(regclassin, CStringGetDatum(name));
	}
	values[0] = PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid),
												true, TYPALIGN_INT));

	tools_execute("SELECT t::pg_catalog.regclass FROM pg_catalog.unnest($1) AS t"
				  " WHERE NOT EXISTS (SELECT FROM " TOOLS_SCHEMA ".config AS c"
				  " WHERE c.target::pg_catalog.oid OPERATOR(pg_catalog.=) t)"
				  " LIMIT 1",
				  1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("target %s is not in tools.config",
						SPI_getvalue(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1)),
				 errhint("Add a tools.config row for it, or leave it out of targets.")));
	return values[0];
}

/* Pages a sample reads to cut a source without statistics into parts. */
#define SAMPLE_PAGES 300

/* A configuration row as tools.run() plans it. */
typedef struct PlanConfig
{
	ToolsJob	job;			/* config_id, source, target, pkey,
								 * condition, trunc */
	int32		parts;			/* 1 for NULL */
} PlanConfig;

/* The elements of an array of any type. */
static void
deconstruct_any(Datum array, Datum **elems, bool **nulls, int *n)
{
	ArrayType  *arr = DatumGetArrayTypeP(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(ARR_ELEMTYPE(arr), &typlen, &typbyval, &typalign);
	deconstruct_array(arr, ARR_ELEMTYPE(arr), typlen, typbyval, typalign,
					  elems, nulls, n);
}

/*
 * The key values that cut the source into parts of about equal size, from
 * the histogram of its first key column, in order; NULL when it has none.
 * The histogram's bounds cut the column's values into buckets of equal
 * frequency; the cuts are the bounds nearest to each n-th of them.
 */
static List *
cuts_from_statistics(PlanConfig *cfg)
{
	ToolsJob   *job = &cfg->job;
	Oid			types[3] = {NAMEOID, NAMEOID, NAMEOID};
	Datum		values[3];
	bool		isnull;
	Datum		d;
	Datum	   *elems;
	int			n;
	int			i;
	List	   *cuts = NIL;

	values[0] = DirectFunctionCall1(namein,
									CStringGetDatum(get_namespace_name(get_rel_namespace(job->source))));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(get_rel_name(job->source)));
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(job->keys[0].attname));
	if (tools_execute("SELECT histogram_bounds FROM pg_catalog.pg_stats"
					  " WHERE schemaname OPERATOR(pg_catalog.=) $1"
					  " AND tablename OPERATOR(pg_catalog.=) $2"
					  " AND attname OPERATOR(pg_catalog.=) $3"
					  " ORDER BY inherited DESC LIMIT 1",
					  3, types, values, NULL, SPI_OK_SELECT) == 0)
		return NULL;
	d = tools_result_value(1, &isnull);
	if (isnull)
		return NULL;
	deconstruct_any(d, &elems, NULL, &n);
	if (n < 2)
		return NULL;
	for (i = 1; i < cfg->parts; i++)
		cuts = lappend(cuts, tools_key_text(&job->keys[0],
											elems[(i * (n - 1) + cfg->parts / 2) / cfg->parts]));
	return cuts;
}

/*
 * The cuts from a sample of a few hundred pages of a table: the key values
 * at each n-th of the sampled rows that meet the condition.
 */
static List *
cuts_from_sample(PlanConfig *cfg)
{
	ToolsJob   *job = &cfg->job;
	Oid			types[2] = {FLOAT8ARRAYOID, FLOAT4OID};
	Datum		values[2];
	Datum	   *fractions = palloc(sizeof(Datum) * (cfg->parts - 1));
	Datum	   *elems;
	bool	   *nulls;
	bool		isnull;
	double		pages;
	Datum		d;
	int			n;
	int			i;
	List	   *cuts = NIL;
	StringInfoData sql;

	values[0] = ObjectIdGetDatum(job->source);
	types[0] = REGCLASSOID;
	tools_execute("SELECT pg_catalog.sum(pg_catalog.pg_relation_size(relid))::pg_catalog.float8"
				  " FROM pg_catalog.pg_partition_tree($1)",
				  1, types, values, NULL, SPI_OK_SELECT);
	d = tools_result_value(1, &isnull);
	pages = isnull ? 0 : DatumGetFloat8(d) / BLCKSZ;

	for (i = 1; i < cfg->parts; i++)
		fractions[i - 1] = Float8GetDatum((double) i / cfg->parts);
	types[0] = FLOAT8ARRAYOID;
	values[0] = PointerGetDatum(construct_array(fractions, cfg->parts - 1,
												FLOAT8OID, sizeof(float8),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = Float4GetDatum(pages <= SAMPLE_PAGES ? 100.0 :
							   100.0 * SAMPLE_PAGES / pages);

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT pg_catalog.percentile_disc($1) WITHIN GROUP (ORDER BY %s)"
					 " FROM %s TABLESAMPLE pg_catalog.system ($2) WHERE %s",
					 job->keys[0].name, job->source_name, tools_key_not_null(job));
	if (job->condition != NULL)
		appendStringInfo(&sql, " AND (%s)", job->condition);
	tools_execute(sql.data, 2, types, values, NULL, SPI_OK_SELECT);
	d = tools_result_value(1, &isnull);
	if (isnull)
		return NIL;
	deconstruct_any(d, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		if (!nulls[i])
			cuts = lappend(cuts, tools_key_text(&job->keys[0], elems[i]));
	return cuts;
}

/* Whether the configured key is one column of an integer type. */
static bool
integer_key(const PlanConfig *cfg)
{
	AttrNumber	attnum;
	Oid			type;

	if (cfg->job.pkey == NULL)
		return false;
	attnum = get_attnum(cfg->job.source, cfg->job.pkey);
	if (attnum == InvalidAttrNumber)
		return false;
	type = getBaseType(get_atttype(cfg->job.source, attnum));
	return type == INT2OID || type == INT4OID || type == INT8OID;
}

/*
 * The cuts of an integer key's range into parts of equal width: from the
 * smallest and largest key that meet the condition, which one aggregate
 * statement finds (a foreign data wrapper sends it whole, as mysql_fdw does
 * to a server without statistics here).  NIL for another key or no rows.
 * Parts are as even as the keys are: equal widths hold equal rows where
 * the keys have no large gaps.
 */
static List *
cuts_from_range(PlanConfig *cfg)
{
	ToolsJob   *job = &cfg->job;
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(cfg->parts)};
	StringInfoData sql;
	List	   *cuts = NIL;
	uint64		n;
	uint64		i;

	if (!integer_key(cfg))
		return NIL;
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT (s.lo OPERATOR(pg_catalog.+) pg_catalog.ceil((s.hi OPERATOR(pg_catalog.-) s.lo"
					 " OPERATOR(pg_catalog.+) 1)::pg_catalog.numeric OPERATOR(pg_catalog.*) g"
					 " OPERATOR(pg_catalog./) $1))::pg_catalog.int8::pg_catalog.text"
					 " FROM (SELECT pg_catalog.min(%s)::pg_catalog.int8 AS lo,"
					 " pg_catalog.max(%s)::pg_catalog.int8 AS hi FROM %s WHERE %s",
					 job->keys[0].name, job->keys[0].name, job->source_name,
					 tools_key_not_null(job));
	if (job->condition != NULL)
		appendStringInfo(&sql, " AND (%s)", job->condition);
	appendStringInfoString(&sql, " HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1) AS s,"
						   " pg_catalog.generate_series(1, $1 OPERATOR(pg_catalog.-) 1) AS g"
						   " WHERE s.lo OPERATOR(pg_catalog.+) pg_catalog.ceil((s.hi OPERATOR(pg_catalog.-) s.lo"
						   " OPERATOR(pg_catalog.+) 1)::pg_catalog.numeric OPERATOR(pg_catalog.*) g"
						   " OPERATOR(pg_catalog./) $1) OPERATOR(pg_catalog.<=) s.hi ORDER BY g");
	n = tools_execute(sql.data, 1, types, values, NULL, SPI_OK_SELECT);
	for (i = 0; i < n; i++)
		cuts = lappend(cuts, SPI_getvalue(SPI_tuptable->vals[i],
										  SPI_tuptable->tupdesc, 1));
	return cuts;
}

/*
 * Cut a configuration's source into cfg->parts ranges of its first key
 * column: from its statistics, or from a sample where a table has none.
 * Returns the cuts in order, without repeats (a key with few values gives
 * fewer parts).
 */
static List *
cut_source(PlanConfig *cfg)
{
	ToolsJob   *job = &cfg->job;
	List	   *cuts;
	List	   *distinct = NIL;
	ListCell   *lc;
	char		relkind;

	tools_describe_relations(job);
	tools_describe_key(job);
	cuts = cuts_from_statistics(cfg);
	relkind = get_rel_relkind(job->source);
	if (cuts == NULL && (relkind == RELKIND_RELATION || relkind == RELKIND_MATVIEW ||
						 relkind == RELKIND_PARTITIONED_TABLE))
		cuts = cuts_from_sample(cfg);
	else if (cuts == NULL)
	{
		cuts = cuts_from_range(cfg);
		if (cuts == NIL && !integer_key(cfg))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("source %s has no statistics to cut it into %d parts",
							job->source_name, cfg->parts),
					 errdetail("Parts are cut from the statistics of the key's first column; a table is sampled instead, and an integer key's range is cut into equal widths."),
					 errhint("Run ANALYZE %s where its wrapper gathers statistics (postgres_fdw samples it on its server), then plan the run again; or set parts of tools.config row %lld to NULL and copy it in one job.",
							 job->source_name, (long long) job->config_id)));
	}
	foreach(lc, cuts)
		if (distinct == NIL || strcmp(llast(distinct), lfirst(lc)) != 0)
			distinct = lappend(distinct, lfirst(lc));
	if (list_length(distinct) + 1 < cfg->parts)
		ereport(NOTICE,
				(errmsg("source %s is cut into %d parts, not %d",
						job->source_name, list_length(distinct) + 1, cfg->parts),
				 errdetail("Its key has too few distinct values, or too few rows, for more.")));
	return distinct;
}

/*
 * Plan one job of the run over the part [lower, upper) of the key, showing
 * where it will start: the position (lastkey, and lastseq as its bigint)
 * of the job it continues, text as tools.job stores them; or none, where
 * lastseq is 0 for an integer key, as the specification shows a job that
 * starts from the beginning.  The job's first start takes the latest
 * position again (copy.c), so the shown one may only grow.
 */
static void
plan_job(int64 run_id, PlanConfig *cfg, const char *lower, const char *upper,
		 const char *lastkey, const char *lastseq)
{
	Oid			types[7] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	if (lastkey == NULL && lastseq == NULL && integer_key(cfg))
		lastseq = "0";
	values[0] = Int64GetDatum(run_id);
	values[1] = Int64GetDatum(cfg->job.config_id);
	values[2] = lower ? CStringGetTextDatum(lower) : (Datum) 0;
	nulls[2] = lower ? ' ' : 'n';
	values[3] = upper ? CStringGetTextDatum(upper) : (Datum) 0;
	nulls[3] = upper ? ' ' : 'n';
	values[4] = cfg->job.pkey ? CStringGetTextDatum(cfg->job.pkey) : (Datum) 0;
	nulls[4] = cfg->job.pkey ? ' ' : 'n';
	values[5] = lastkey ? CStringGetTextDatum(lastkey) : (Datum) 0;
	nulls[5] = lastkey ? ' ' : 'n';
	values[6] = lastseq ? CStringGetTextDatum(lastseq) : (Datum) 0;
	nulls[6] = lastseq ? ' ' : 'n';
	tools_execute("INSERT INTO " TOOLS_SCHEMA ".job"
				  " (run_id, config_id, lower, upper, pkey, lastkey, lastseq)"
				  " VALUES ($1, $2, $3, $4, $5, $6::pg_catalog.text[], $7::pg_catalog.int8)",
				  7, types, values, nulls, SPI_OK_INSERT);
}

/*
 * Plan the one job of a configuration without a key: it copies its rows
 * in one batch, so a failure leaves nothing to resume from and the job's
 * next call copies everything again, exactly.  A new run that does not
 * empty the target after a run completed it would copy its rows twice.
 */
static void
plan_keyless(int64 run_id, PlanConfig *cfg)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(cfg->job.config_id)};

	if (cfg->parts > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("configuration %lld has no key to cut into %d parts",
						(long long) cfg->job.config_id, cfg->parts),
				 errdetail("Parts are ranges of the key."),
				 errhint("Set pkey of tools.config row %lld to a key of the source, or set its parts to NULL.",
						 (long long) cfg->job.config_id)));
	if (!cfg->job.trunc &&
		tools_execute("SELECT run_id FROM " TOOLS_SCHEMA ".job"
					  " WHERE config_id OPERATOR(pg_catalog.=) $1"
					  " AND state OPERATOR(pg_catalog.=) 'completed'"
					  " ORDER BY run_id DESC LIMIT 1",
					  1, types, values, NULL, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("configuration %lld has no key, and run %s has copied it already",
						(long long) cfg->job.config_id,
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
				 errdetail("Without a key a new run cannot tell the rows copied from the others: it would copy every row again into the target."),
				 errhint("Set trunc of tools.config row %lld, so that the run empties the target first, or set its pkey.",
						 (long long) cfg->job.config_id)));
	plan_job(run_id, cfg, NULL, NULL, NULL, NULL);
}

/*
 * Plan the jobs of a configuration row.  A configuration that does not
 * truncate its target continues in the parts of its latest run that
 * recorded a position, so that each new job resumes where the job of the
 * same part stopped; other configurations are cut anew.
 */
static void
plan_config(int64 run_id, PlanConfig *cfg)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(cfg->job.config_id)};
	List	   *cuts;
	ListCell   *lc;
	const char *lower = NULL;

	/*
	 * Splitting a foreign source among configurations by a modulo costs far
	 * more than parts: the remote server reads the key range and tests each
	 * row, and its planner, which cannot estimate the modulo, may read past
	 * the batch's range to find its bound.
	 */
	if (get_rel_relkind(cfg->job.source) == RELKIND_FOREIGN_TABLE &&
		tools_condition_has_modulo(&cfg->job))
		ereport(WARNING,
				(errmsg("condition of configuration %lld splits %s by a modulo",
						(long long) cfg->job.config_id,
						tools_relation_sql(cfg->job.source)),
				 errdetail("Over a foreign table, each batch reads every row of its key range on the remote server, and a batch's bound may read far past it: the remote planner cannot estimate how many rows a modulo keeps."),
				 errhint("Copy the source with one configuration and set its parts instead: each part reads only its own key range.")));

	if (cfg->job.pkey == NULL)
	{
		plan_keyless(run_id, cfg);
		return;
	}
	if (!cfg->job.trunc &&
		tools_execute("SELECT lower, upper, run_id, pkey, lastkey, lastseq"
					  " FROM " TOOLS_SCHEMA ".job"
					  " WHERE run_id OPERATOR(pg_catalog.=) (SELECT pg_catalog.max(run_id)"
					  " FROM " TOOLS_SCHEMA ".job WHERE config_id OPERATOR(pg_catalog.=) $1"
					  " AND lastkey IS NOT NULL)"
					  " AND config_id OPERATOR(pg_catalog.=) $1 ORDER BY job_id",
					  1, types, values, NULL, SPI_OK_SELECT) > 0)
	{
		SPITupleTable *parts = SPI_tuptable;
		uint64		n = SPI_processed;
		uint64		i;
		bool		emptied;

		for (i = 0; i < n; i++)
			tools_check_key_kept(&cfg->job,
								 SPI_getvalue(parts->vals[i], parts->tupdesc, 4),
								 psprintf("Run %s",
										  SPI_getvalue(parts->vals[i], parts->tupdesc, 3)));
		if (n != (uint64) cfg->parts)
			ereport(NOTICE,
					(errmsg("configuration %lld continues in the %d parts of run %s",
							(long long) cfg->job.config_id, (int) n,
							SPI_getvalue(parts->vals[0], parts->tupdesc, 3)),
					 errdetail("It does not truncate its target: each job continues where the job of its part stopped."),
					 errhint("parts = %d applies to a run that truncates the target.",
							 cfg->parts)));
		/* Where another configuration empties the target, it starts over. */
		types[0] = OIDOID;
		values[0] = ObjectIdGetDatum(cfg->job.target);
		emptied = tools_execute("SELECT FROM " TOOLS_SCHEMA ".config"
								" WHERE target::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
								" AND trunc LIMIT 1",
								1, types, values, NULL, SPI_OK_SELECT) > 0;
		for (i = 0; i < n; i++)
			plan_job(run_id, cfg,
					 SPI_getvalue(parts->vals[i], parts->tupdesc, 1),
					 SPI_getvalue(parts->vals[i], parts->tupdesc, 2),
					 emptied ? NULL : SPI_getvalue(parts->vals[i], parts->tupdesc, 5),
					 emptied ? NULL : SPI_getvalue(parts->vals[i], parts->tupdesc, 6));
		return;
	}

	if (cfg->parts <= 1)
	{
		plan_job(run_id, cfg, NULL, NULL, NULL, NULL);
		return;
	}
	cuts = cut_source(cfg);
	foreach(lc, cuts)
	{
		plan_job(run_id, cfg, lower, lfirst(lc), NULL, NULL);
		lower = lfirst(lc);
	}
	plan_job(run_id, cfg, lower, NULL, NULL, NULL);
}

PG_FUNCTION_INFO_V1(tools_run);

/*
 * tools.run(targets text[] DEFAULT '{}')
 *		RETURNS TABLE (statement text, target regclass)
 */
Datum
tools_run(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store;
	Oid			types[2] = {INT8OID, OIDARRAYOID};
	Datum		values[2];
	bool		isnull;
	int64		run_id;
	SPITupleTable *configs;
	uint64		nconfigs;
	uint64		i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("targets must not be NULL"),
				 errhint("Pass '{}' to plan every configured target.")));

	store = tools_materialize(fcinfo, &desc);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	values[1] = resolve_targets(PG_GETARG_ARRAYTYPE_P(0));

	tools_execute("INSERT INTO " TOOLS_SCHEMA ".run DEFAULT VALUES RETURNING run_id",
				  0, NULL, NULL, NULL, SPI_OK_INSERT_RETURNING);
	run_id = DatumGetInt64(tools_result_value(1, &isnull));

	/*
	 * Job ids follow the configuration (config_id, then part); the
	 * statements come in priority order.
	 */
	values[0] = Int64GetDatum(run_id);
	nconfigs = tools_execute("SELECT config_id, source, target, pkey, condition,"
							 " trunc, parts FROM " TOOLS_SCHEMA ".config"
							 " WHERE pg_catalog.cardinality($2) OPERATOR(pg_catalog.=) 0"
							 " OR target::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($2)"
							 " ORDER BY config_id",
							 2, types, values, NULL, SPI_OK_SELECT);
	if (nconfigs == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("tools.config has no rows to plan"),
				 errhint("Add a row per source-to-target copy to tools.config.")));
	configs = SPI_tuptable;
	for (i = 0; i < nconfigs; i++)
	{
		HeapTuple	row = configs->vals[i];
		TupleDesc	cdesc = configs->tupdesc;
		PlanConfig	cfg;
		Datum		d;

		memset(&cfg, 0, sizeof(cfg));
		cfg.job.config_id = DatumGetInt32(SPI_getbinval(row, cdesc, 1, &isnull));
		cfg.job.source = DatumGetObjectId(SPI_getbinval(row, cdesc, 2, &isnull));
		cfg.job.target = DatumGetObjectId(SPI_getbinval(row, cdesc, 3, &isnull));
		cfg.job.pkey = SPI_getvalue(row, cdesc, 4);
		cfg.job.condition = SPI_getvalue(row, cdesc, 5);
		cfg.job.trunc = DatumGetBool(SPI_getbinval(row, cdesc, 6, &isnull));
		d = SPI_getbinval(row, cdesc, 7, &isnull);
		cfg.parts = isnull ? 1 : DatumGetInt32(d);
		plan_config(run_id, &cfg);
	}
	tools_estimate_run(run_id, false, true, NULL, NULL);

	tools_execute("SELECT j.job_id, c.target"
				  " FROM " TOOLS_SCHEMA ".job AS j JOIN " TOOLS_SCHEMA ".config AS c"
				  " ON c.config_id OPERATOR(pg_catalog.=) j.config_id"
				  " WHERE j.run_id OPERATOR(pg_catalog.=) $1"
				  " ORDER BY " TOOLS_JOB_ORDER,
				  1, types, values, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		Datum		out[2];
		bool		nulls[2] = {false, false};
		int64		job_id;

		job_id = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 1,
											 &isnull));
		out[0] = CStringGetTextDatum(psprintf("CALL " TOOLS_SCHEMA ".start(%lld);",
											  (long long) job_id));
		out[1] = SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull);
		tuplestore_putvalues(store, desc, out, nulls);
	}

	SPI_finish();
	return (Datum) 0;
}
