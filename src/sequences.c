/*-------------------------------------------------------------------------
 *
 * sequences.c
 *		Sequences of a target's columns set past the copied values
 *		(tools.config.sequences).
 *
 * A copy writes the source's values into serial and identity columns; the
 * sequences behind them stay where they were, and the application's first
 * INSERT after the cutover would take a value already copied.  Each job,
 * once its copy is done, sets every sequence owned by a column of its
 * target (a serial's, an identity's) to the column's largest value, if the
 * sequence would not already give a larger one: never backwards.
 *
 * Jobs of a run on one target complete in any order and together; each
 * looks at the whole target, after its own last batch has committed, while
 * it holds the target's lock (completing jobs take it in turn).  The job
 * whose last batch commits last sees every row, so the sequences end past
 * all of them.  Descending sequences are left alone.
 *
 * IDENTIFICATION
 *		src/sequences.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "tools.h"

/* The ascending sequences owned by the target's columns: oid, column. */
#define OWNED_SEQUENCES_SQL \
	"SELECT s.oid, a.attname FROM pg_catalog.pg_depend AS d" \
	" JOIN pg_catalog.pg_class AS s ON s.oid OPERATOR(pg_catalog.=) d.objid" \
	" JOIN pg_catalog.pg_sequence AS q ON q.seqrelid OPERATOR(pg_catalog.=) s.oid" \
	" JOIN pg_catalog.pg_attribute AS a ON a.attrelid OPERATOR(pg_catalog.=) d.refobjid" \
	" AND a.attnum OPERATOR(pg_catalog.=) d.refobjsubid" \
	" WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass" \
	" AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass" \
	" AND d.refobjid OPERATOR(pg_catalog.=) $1" \
	" AND d.deptype OPERATOR(pg_catalog.=) ANY ('{a,i}'::pg_catalog.\"char\"[])" \
	" AND q.seqincrement OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped" \
	" ORDER BY a.attnum"

/*
 * Whether the target has columns that own sequences.  The caller is
 * connected to SPI.
 */
bool
tools_has_sequences(const ToolsJob *job)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(job->target)};

	return tools_execute(OWNED_SEQUENCES_SQL " LIMIT 1", 1, types, values,
						 NULL, SPI_OK_SELECT) > 0;
}

/*
 * Set each sequence owned by a column of the job's target past the
 * column's largest value, unless it is past it already.  The caller is
 * connected to SPI and holds the target's lock.
 */
void
tools_set_sequences(const ToolsJob *job)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(job->target)};
	SPITupleTable *owned;
	uint64		n;
	uint64		i;

	n = tools_execute(OWNED_SEQUENCES_SQL, 1, types, values, NULL,
					  SPI_OK_SELECT);
	owned = SPI_tuptable;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		Oid			seq = DatumGetObjectId(SPI_getbinval(owned->vals[i],
														 owned->tupdesc, 1,
														 &isnull));
		char	   *column = SPI_getvalue(owned->vals[i], owned->tupdesc, 2);
		char	   *seq_name = tools_relation_sql(seq);

		values[0] = ObjectIdGetDatum(seq);
		if (tools_execute(psprintf("SELECT pg_catalog.setval($1, m.v)"
								   " FROM (SELECT pg_catalog.max(%s)::pg_catalog.int8 AS v"
								   " FROM %s) AS m"
								   " WHERE m.v OPERATOR(pg_catalog.>)"
								   " (SELECT CASE WHEN is_called THEN last_value"
								   " ELSE last_value OPERATOR(pg_catalog.-) 1 END FROM %s)",
								   quote_identifier(column), job->target_name,
								   seq_name),
						  1, types, values, NULL, SPI_OK_SELECT) > 0)
			elog(DEBUG1, "tools job %lld set sequence %s past the values of %s.%s",
				 (long long) job->job_id, seq_name, job->target_name,
				 quote_identifier(column));
	}
}
