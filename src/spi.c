/*-------------------------------------------------------------------------
 *
 * spi.c
 *		The one way the extension runs its own bookkeeping statements.
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

#include "executor/spi.h"

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
