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

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "tools.h"

PG_MODULE_MAGIC;

/* Set up a materialized result; returns the tuplestore to fill. */
static Tuplestorestate *
materialize_result(FunctionCallInfo fcinfo, TupleDesc *desc)
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
		elems[i] = DirectFunctionCall1(regclassin,
									   CStringGetDatum(TextDatumGetCString(elems[i])));
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
	uint64		i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("targets must not be NULL"),
				 errhint("Pass '{}' to plan every configured target.")));

	store = materialize_result(fcinfo, &desc);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	values[1] = resolve_targets(PG_GETARG_ARRAYTYPE_P(0));

	tools_execute("INSERT INTO " TOOLS_SCHEMA ".run DEFAULT VALUES RETURNING run_id",
				  0, NULL, NULL, NULL, SPI_OK_INSERT_RETURNING);
	run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));

	/* Job ids follow the order of the statements. */
	values[0] = Int64GetDatum(run_id);
	tools_execute("INSERT INTO " TOOLS_SCHEMA ".job (run_id, config_id)"
				  " SELECT $1, config_id FROM " TOOLS_SCHEMA ".config"
				  " WHERE pg_catalog.cardinality($2) OPERATOR(pg_catalog.=) 0"
				  " OR target::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($2)"
				  " ORDER BY priority NULLS LAST, config_id",
				  2, types, values, NULL, SPI_OK_INSERT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("tools.config has no rows to plan"),
				 errhint("Add a row per source-to-target copy to tools.config.")));

	tools_execute("SELECT j.job_id, c.target"
				  " FROM " TOOLS_SCHEMA ".job AS j JOIN " TOOLS_SCHEMA ".config AS c"
				  " ON c.config_id OPERATOR(pg_catalog.=) j.config_id"
				  " WHERE j.run_id OPERATOR(pg_catalog.=) $1"
				  " ORDER BY j.job_id",
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
