/*-------------------------------------------------------------------------
 *
 * query.c
 *		The SQL a job runs, built from the catalogs.
 *
 * tools_describe_job() checks a job's relations and key against the
 * catalogs and matches the target's columns with the source's by name.  The
 * builders below turn that description into statements.  Every name in them
 * comes from the catalogs through quote_identifier, every operator and
 * function is qualified with pg_catalog, so nothing planted earlier in the
 * caller's search_path changes what runs.  The configured condition is the
 * one piece of user text: it is trusted SQL, run as the caller.
 *
 * A batch is the key range (lower, upper]: the bound statement finds the
 * upper end as the batchsize-th key above the lower end, and the copy
 * statement moves every row of the range.  Rows sharing the upper key all
 * land in the same batch, so a batch boundary never splits a group of equal
 * keys.
 *
 * IDENTIFICATION
 *		src/query.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pg_list.h"
#include "nodes/plannodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "tools.h"

/*
 * Schema-qualified, quoted name of a configured relation; a clear error when
 * the relation behind the stored OID was dropped.
 */
static char *
relation_name(Oid relid, const char *role, int64 config_id)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("%s relation of configuration %lld does not exist",
						role, (long long) config_id),
				 errdetail("The relation it named was dropped after it was configured."),
				 errhint("Update the %s of tools.config row %lld, then plan a new run.",
						 role, (long long) config_id)));

	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  relname);
}

/*
 * The source's key column named by config.pkey: its exact name first (as the
 * catalogs spell it), then as an SQL identifier, so "Id" and "\"Id\"" both
 * find a column named Id.
 */
static AttrNumber
key_attnum(const ToolsJob *job, char **name)
{
	AttrNumber	attnum = get_attnum(job->source, job->pkey);
	List	   *names = NIL;

	*name = job->pkey;
	if (attnum == InvalidAttrNumber &&
		SplitIdentifierString(pstrdup(job->pkey), ',', &names))
	{
		if (list_length(names) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("composite key \"%s\" of configuration %lld is not supported",
							job->pkey, (long long) job->config_id),
					 errhint("Set pkey to one integer column of %s.",
							 job->source_name)));
		if (names != NIL)
		{
			*name = linitial(names);
			attnum = get_attnum(job->source, *name);
		}
	}
	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" does not exist in source %s",
						job->pkey, job->source_name),
				 errhint("Set pkey of tools.config row %lld to a column of the source.",
						 (long long) job->config_id)));
	return attnum;
}

/* Resolve the key column: its name, base type and nullability. */
static void
describe_key(ToolsJob *job)
{
	char	   *name;
	AttrNumber	attnum = key_attnum(job, &name);
	HeapTuple	tuple;
	Form_pg_attribute att;

	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(job->source),
							Int16GetDatum(attnum));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for attribute %d of relation %u",
			 attnum, job->source);
	att = (Form_pg_attribute) GETSTRUCT(tuple);
	job->key_type = getBaseType(att->atttypid);
	job->key_not_null = att->attnotnull;
	ReleaseSysCache(tuple);

	if (job->key_type != INT2OID && job->key_type != INT4OID &&
		job->key_type != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("key column \"%s\" of source %s has type %s, which tools cannot use as a key",
						name, job->source_name, format_type_be(job->key_type)),
				 errdetail("The resume position is kept in tools.job.lastseq, a bigint: keys must be smallint, integer or bigint."),
				 errhint("Set pkey of tools.config row %lld to an integer column.",
						 (long long) job->config_id)));

	if (get_attnum(job->target, name) == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" does not exist in target %s",
						name, job->target_name),
				 errdetail("Columns are matched by name, and the key must be copied."),
				 errhint("Add the column to the target, or choose another pkey.")));

	job->key_name = pstrdup(quote_identifier(name));
}

/*
 * The insert's column list: every target column that the source has too,
 * matched by name, in the target's order.  Generated columns are left to the
 * target; target columns the source lacks take their defaults; source
 * columns the target lacks are not read.  The list is never empty: the key
 * is a column of both.
 */
static void
describe_columns(ToolsJob *job)
{
	Relation	rel = relation_open(job->target, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	job->ncolumns = 0;
	job->target_attnums = palloc(sizeof(AttrNumber) * desc->natts);
	job->same_types = true;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		HeapTuple	tuple;
		Form_pg_attribute src;

		if (att->attisdropped || att->attgenerated != '\0')
			continue;
		tuple = SearchSysCacheAttName(job->source, name);
		if (!HeapTupleIsValid(tuple))
			continue;
		src = (Form_pg_attribute) GETSTRUCT(tuple);
		if (src->atttypid != att->atttypid || src->atttypmod != att->atttypmod)
			job->same_types = false;
		ReleaseSysCache(tuple);

		appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "",
						 quote_identifier(name));
		job->target_attnums[job->ncolumns++] = att->attnum;
	}
	relation_close(rel, AccessShareLock);
	job->columns = buf.data;
}

void
tools_describe_job(ToolsJob *job)
{
	const char *obstacle;

	job->source_name = relation_name(job->source, "source", job->config_id);
	job->source_foreign = get_rel_relkind(job->source) == RELKIND_FOREIGN_TABLE;
	job->target_name = relation_name(job->target, "target", job->config_id);
	describe_key(job);
	describe_columns(job);
	obstacle = tools_bulk_obstacle(job);
	job->bulk = obstacle == NULL;
	if (job->bulk)
		elog(DEBUG1, "tools job %lld writes into %s by bulk insertion",
			 (long long) job->job_id, job->target_name);
	else
		elog(DEBUG1, "tools job %lld writes into %s with INSERT: %s",
			 (long long) job->job_id, job->target_name, obstacle);
}

/*
 * WHERE clause of a batch: the condition, then the key range.  $1 is the
 * lower end, excluded (absent for the first batch), $2 the upper end,
 * included; without an upper end the range is open above.
 */
static void
append_where(StringInfo buf, const ToolsJob *job, bool lower, bool upper)
{
	appendStringInfoString(buf, " WHERE ");
	if (job->condition != NULL)
		appendStringInfo(buf, "(%s) AND ", job->condition);
	if (lower)
		appendStringInfo(buf, "%s OPERATOR(pg_catalog.>) $1", job->key_name);
	else
		appendStringInfo(buf, "%s IS NOT NULL", job->key_name);
	if (upper)
		appendStringInfo(buf, " AND %s OPERATOR(pg_catalog.<=) $2",
						 job->key_name);
}

/*
 * The upper end of the next batch.  The next batch ends at the batchsize-th
 * key above the lower end; when there is none, the last batch ends at the
 * largest key.  Either statement returns one key, or no row: OFFSET and
 * LIMIT at the top level go to the remote server with the key range through
 * postgres_fdw, so a foreign source sends one row, not the keys it skips.
 */
char *
tools_bound_sql(const ToolsJob *job, bool lower, bool last)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT %s FROM %s", job->key_name, job->source_name);
	append_where(&buf, job, lower, false);
	if (last)
		appendStringInfo(&buf, " ORDER BY %s DESC NULLS LAST LIMIT 1",
						 job->key_name);
	else
		appendStringInfo(&buf, " ORDER BY %s OFFSET %d LIMIT 1",
						 job->key_name, job->batchsize - 1);
	return buf.data;
}

/* Read the rows of one key range, in the order of the insert's columns. */
char *
tools_select_sql(const ToolsJob *job, bool lower)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT %s FROM %s", job->columns, job->source_name);
	append_where(&buf, job, lower, true);
	return buf.data;
}

/* Copy the rows of one key range. */
char *
tools_copy_sql(const ToolsJob *job, bool lower)
{
	return psprintf("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE %s",
					job->target_name, job->columns,
					tools_select_sql(job, lower));
}

/* Count the rows of the job that no key range can reach. */
char *
tools_null_keys_sql(const ToolsJob *job)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT pg_catalog.count(*) FROM %s WHERE ",
					 job->source_name);
	if (job->condition != NULL)
		appendStringInfo(&buf, "(%s) AND ", job->condition);
	appendStringInfo(&buf, "%s IS NULL", job->key_name);
	return buf.data;
}

/* Key values travel as bigint in tools.job.lastseq. */
Datum
tools_key_datum(int64 value, Oid type)
{
	switch (type)
	{
		case INT2OID:
			return Int16GetDatum((int16) value);
		case INT4OID:
			return Int32GetDatum((int32) value);
		default:
			return Int64GetDatum(value);
	}
}

int64
tools_key_int64(Datum value, Oid type)
{
	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(value);
		case INT4OID:
			return DatumGetInt32(value);
		default:
			return DatumGetInt64(value);
	}
}

static bool
has_param(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param))
		return true;
	return expression_tree_walker(node, has_param, context);
}

/*
 * Whether a plan reads a foreign source beyond what the batch needs: it
 * sorts the rows locally (the wrapper did not push the key order down), or
 * filters them locally by the key range (a qual with a parameter: the
 * wrapper did not push the range down).  Either way each batch fetches
 * every remaining row of the source.
 */
static bool
plan_reads_all(Plan *plan, bool sorted_above)
{
	if (plan == NULL)
		return false;
	if (IsA(plan, ForeignScan))
		return sorted_above || has_param((Node *) plan->qual, NULL);
	if (IsA(plan, Sort) || IsA(plan, IncrementalSort))
		sorted_above = true;
	return plan_reads_all(plan->lefttree, sorted_above) ||
		plan_reads_all(plan->righttree, sorted_above);
}

/* Whether the generic plan of a job statement reads all its source. */
bool
tools_plan_reads_all(SPIPlanPtr plan)
{
	CachedPlanSource *source = linitial(SPI_plan_get_plan_sources(plan));
	CachedPlan *cplan;
	bool		result = false;
	ListCell   *lc;

#if PG_VERSION_NUM >= 140000
	cplan = GetCachedPlan(source, NULL, NULL, NULL);
#else
	cplan = GetCachedPlan(source, NULL, false, NULL);
#endif
	foreach(lc, cplan->stmt_list)
	{
		PlannedStmt *stmt = lfirst_node(PlannedStmt, lc);

		result = result || plan_reads_all(stmt->planTree, false);
	}
#if PG_VERSION_NUM >= 140000
	ReleaseCachedPlan(cplan, NULL);
#else
	ReleaseCachedPlan(cplan, false);
#endif
	return result;
}
