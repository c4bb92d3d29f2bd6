/*-------------------------------------------------------------------------
 *
 * key.c
 *		The key a job follows: its columns, their order, their text form.
 *
 * A key is one or more columns of the source, each of a type with a default
 * btree ordering.  Batches follow the rows in the order of the key; the
 * comparisons that bound them use the operators of that ordering, named
 * with their schemas, and the column's collation.
 *
 * Key values are kept in tools.job as text (lastkey, lower, upper).  The
 * text is written and read with fixed date, interval and float styles, so a
 * session with other settings reads back the value that was written.
 *
 * IDENTIFICATION
 *		src/key.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/stratnum.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/varlena.h"

#include "tools.h"

/*
 * The source's key columns named by config.pkey: the whole text as a column
 * name first (as the catalogs spell it), then as a comma-separated list of
 * SQL identifiers, so "Id", "\"Id\"" and "a, \"B\"" all find their columns.
 */
static List *
key_names(const ToolsJob *job)
{
	List	   *names = NIL;

	if (get_attnum(job->source, job->pkey) != InvalidAttrNumber)
		return list_make1(job->pkey);
	if (!SplitIdentifierString(pstrdup(job->pkey), ',', &names) || names == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key \"%s\" of configuration %lld is not a list of column names",
						job->pkey, (long long) job->config_id),
				 errhint("Set pkey to a column of %s, or to several separated by commas.",
						 job->source_name)));
	if (list_length(names) > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("key \"%s\" of configuration %lld has more than %d columns",
						job->pkey, (long long) job->config_id, INDEX_MAX_KEYS)));
	return names;
}

/* "OPERATOR(schema.name)" for an operator. */
static char *
operator_sql(Oid opno)
{
	HeapTuple	tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator op;
	char	   *sql;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tuple);
	sql = psprintf("OPERATOR(%s.%s)",
				   quote_identifier(get_namespace_name(op->oprnamespace)),
				   NameStr(op->oprname));
	ReleaseSysCache(tuple);
	return sql;
}

/*
 * The target's column of a key column, as the key's type and in the
 * source column's collation where the target's differ: compared with key
 * values, it orders as the source does, so that a key range holds the same
 * rows on both sides (tools.verify()).
 */
static char *
target_expr(const ToolsJob *job, const ToolsKeyColumn *col,
			Oid source_collation)
{
	char	   *name = pstrdup(quote_identifier(col->attname));
	Oid			type;
	int32		typmod;
	Oid			collation;
	StringInfoData buf;

	get_atttypetypmodcoll(job->target, get_attnum(job->target, col->attname),
						  &type, &typmod, &collation);
	if (getBaseType(type) == col->type && collation == source_collation)
		return name;
	initStringInfo(&buf);
	appendStringInfo(&buf, "(%s::%s", name,
					 format_type_extended(col->type, -1, FORMAT_TYPE_FORCE_QUALIFY));
	if (OidIsValid(source_collation))
	{
		HeapTuple	tuple = SearchSysCache1(COLLOID,
											ObjectIdGetDatum(source_collation));
		Form_pg_collation coll;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for collation %u", source_collation);
		coll = (Form_pg_collation) GETSTRUCT(tuple);
		appendStringInfo(&buf, " COLLATE %s",
						 quote_qualified_identifier(get_namespace_name(coll->collnamespace),
													NameStr(coll->collname)));
		ReleaseSysCache(tuple);
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * One key column: its type and the operators of its type's default btree
 * ordering, or an error naming the column when the type has none.
 */
static void
describe_column(ToolsJob *job, ToolsKeyColumn *col, const char *name)
{
	AttrNumber	attnum = get_attnum(job->source, name);
	HeapTuple	tuple;
	Form_pg_attribute att;
	TypeCacheEntry *tc;
	bool		varlena;
	int			s;
	Oid			source_collation;

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" does not exist in source %s",
						name, job->source_name),
				 errhint("Set pkey of tools.config row %lld to columns of the source.",
						 (long long) job->config_id)));

	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(job->source),
							Int16GetDatum(attnum));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for attribute %d of relation %u",
			 attnum, job->source);
	att = (Form_pg_attribute) GETSTRUCT(tuple);
	col->type = getBaseType(att->atttypid);
	col->not_null = att->attnotnull;
	source_collation = att->attcollation;
	col->collation = source_collation;
	ReleaseSysCache(tuple);
	get_typlenbyval(col->type, &col->typlen, &col->typbyval);

	tc = lookup_type_cache(col->type, TYPECACHE_BTREE_OPFAMILY);
	if (!OidIsValid(tc->btree_opf))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("key column \"%s\" of source %s has type %s, which has no default ordering",
						name, job->source_name, format_type_be(col->type)),
				 errdetail("Batches follow the key's order: its type needs a default btree operator class."),
				 errhint("Set pkey of tools.config row %lld to columns of ordered types, such as integers, text, uuid or timestamps.",
						 (long long) job->config_id)));
	for (s = 1; s <= BTMaxStrategyNumber; s++)
	{
		Oid			opno = get_opfamily_member(tc->btree_opf, tc->btree_opintype,
											   tc->btree_opintype, s);

		if (!OidIsValid(opno))
			elog(ERROR, "operator of strategy %d missing for type %s", s,
				 format_type_be(col->type));
		col->ops[s] = operator_sql(opno);
	}

	if (get_attnum(job->target, name) == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" does not exist in target %s",
						name, job->target_name),
				 errdetail("Columns are matched by name, and the key must be copied."),
				 errhint("Add the column to the target, or choose another pkey.")));

	col->attname = pstrdup(name);
	col->name = pstrdup(quote_identifier(name));
	col->target_expr = target_expr(job, col, source_collation);
	getTypeInputInfo(col->type, &col->input, &col->ioparam);
	getTypeOutputInfo(col->type, &col->output, &varlena);
}

/*
 * Resolve the key: each column named by config.pkey, in the source and in
 * the target.
 */
void
tools_describe_key(ToolsJob *job)
{
	List	   *names;
	ListCell   *lc;
	int			i;
	int			s;

	if (job->pkey == NULL)
	{
		/* No key: the job copies its rows in one batch. */
		job->nkeys = 0;
		job->keys = NULL;
		job->integer_key = false;
		job->row_compare = false;
		return;
	}
	names = key_names(job);
	job->nkeys = list_length(names);
	job->keys = palloc0(sizeof(ToolsKeyColumn) * job->nkeys);
	i = 0;
	foreach(lc, names)
	{
		int			j;

		for (j = 0; j < i; j++)
			if (strcmp(job->keys[j].name, quote_identifier(lfirst(lc))) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("key \"%s\" of configuration %lld names column \"%s\" twice",
								job->pkey, (long long) job->config_id,
								(char *) lfirst(lc)),
						 errhint("Name each column of the key once.")));
		describe_column(job, &job->keys[i++], lfirst(lc));
	}

	job->integer_key = job->nkeys == 1 &&
		(job->keys[0].type == INT2OID || job->keys[0].type == INT4OID ||
		 job->keys[0].type == INT8OID);

	/*
	 * A row comparison, (a, b) > ($1, $2), is an index range for the local
	 * planner; it names one operator for all columns.  Foreign data wrappers
	 * do not send row comparisons to the remote server.
	 */
	job->row_compare = job->nkeys > 1 && !job->source_foreign;
	for (i = 1; i < job->nkeys; i++)
		for (s = 1; s <= BTMaxStrategyNumber; s++)
			if (strcmp(job->keys[i].ops[s], job->keys[0].ops[s]) != 0)
				job->row_compare = false;
}

/*
 * Fix the settings that change how values are written as text, until
 * tools_restore_settings() with the level returned.
 */
int
tools_fix_style(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("datestyle", "ISO, YMD", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("intervalstyle", "postgres", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("extra_float_digits", "3", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * Undo the settings made from the GUC nest level returned by
 * tools_fix_style() (or by indexes.c, for search_path).
 */
void
tools_restore_settings(int level)
{
	AtEOXact_GUC(true, level);
}

/* A key value as the text kept in tools.job. */
char *
tools_key_text(const ToolsKeyColumn *col, Datum value)
{
	int			level = tools_fix_style();
	char	   *text = OidOutputFunctionCall(col->output, value);

	tools_restore_settings(level);
	return text;
}

/* The key value kept as text in tools.job. */
Datum
tools_key_value(const ToolsKeyColumn *col, const char *text)
{
	int			level = tools_fix_style();
	Datum		value = OidInputFunctionCall(col->input, (char *) text,
											 col->ioparam, -1);

	tools_restore_settings(level);
	return value;
}

/* A key's values as the text of the text[] kept in tools.job.lastkey. */
char *
tools_key_string(const ToolsJob *job, const Datum *values)
{
	return OidOutputFunctionCall(F_ARRAY_OUT, tools_key_array(job, values));
}

/* A key's values as the text[] kept in tools.job.lastkey. */
Datum
tools_key_array(const ToolsJob *job, const Datum *values)
{
	Datum	   *texts = palloc(sizeof(Datum) * job->nkeys);
	int			i;

	for (i = 0; i < job->nkeys; i++)
		texts[i] = CStringGetTextDatum(tools_key_text(&job->keys[i], values[i]));
	return PointerGetDatum(construct_array(texts, job->nkeys, TEXTOID, -1,
										   false, TYPALIGN_INT));
}

/*
 * The values of a key kept as text[] by tools_key_array(); an error when
 * they do not fit the key (its columns changed since they were written).
 */
void
tools_key_from_array(const ToolsJob *job, Datum array, Datum *values)
{
	ArrayType  *arr = DatumGetArrayTypeP(array);
	Datum	   *texts;
	bool	   *nulls;
	int			n;
	int			i;
	bool		fits;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &texts, &nulls, &n);
	fits = n == job->nkeys && ARR_NDIM(arr) == 1;
	for (i = 0; fits && i < n; i++)
		fits = !nulls[i];
	if (!fits)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("position %s of job %lld does not fit its key \"%s\"",
						OidOutputFunctionCall(F_ARRAY_OUT, array),
						(long long) job->job_id, job->pkey),
				 errdetail_plural("The key has %d column: the position was recorded for another key.",
								  "The key has %d columns: the position was recorded for another key.",
								  job->nkeys, job->nkeys),
				 errhint("Set pkey of tools.config row %lld back to the key the position was recorded for, or start over with trunc set.",
						 (long long) job->config_id)));
	for (i = 0; i < n; i++)
		values[i] = tools_key_value(&job->keys[i], TextDatumGetCString(texts[i]));
}

/* An integer key's value as tools.job.lastseq keeps it, and back. */
int64
tools_key_int64(const ToolsJob *job, const Datum *values)
{
	switch (job->keys[0].type)
	{
		case INT2OID:
			return DatumGetInt16(values[0]);
		case INT4OID:
			return DatumGetInt32(values[0]);
		default:
			return DatumGetInt64(values[0]);
	}
}

Datum
tools_int64_key(const ToolsJob *job, int64 value)
{
	switch (job->keys[0].type)
	{
		case INT2OID:
			return Int16GetDatum((int16) value);
		case INT4OID:
			return Int32GetDatum((int32) value);
		default:
			return Int64GetDatum(value);
	}
}

/*
 * Key windows.  Over a foreign data wrapper other than postgres_fdw, a
 * statement's ORDER BY ... LIMIT may make the remote server sort every row
 * left (mysql_fdw writes ORDER BY as "key IS NULL, key", which MySQL and
 * MariaDB sort instead of reading the key's index), so that each batch or
 * chunk costs more than the one before.  Where the job's key is one
 * integer column, its reads are bounded by windows of key values instead,
 * key > a AND key <= b, whose width follows the density of the rows the
 * window before held (tools_window_width()).
 */
bool
tools_use_windows(const ToolsJob *job)
{
	Oid			type = job->nkeys == 1 ? job->keys[0].type : InvalidOid;

	return job->source_foreign && job->source_fdw != NULL &&
		strcmp(job->source_fdw, "postgres_fdw_handler") != 0 &&
		(type == INT2OID || type == INT4OID || type == INT8OID);
}

/*
 * The span of the keys, from the row of tools_span_sql() that the last
 * statement returned: the smallest key, the largest, and the width of a
 * first window of about per_window rows where the keys are as dense
 * throughout.
 */
void
tools_window_span(const ToolsJob *job, int per_window, int64 *lo, int64 *hi,
				  int64 *width)
{
	bool		isnull;
	Datum		value;

	value = tools_result_value(1, &isnull);
	*lo = tools_key_int64(job, &value);
	value = tools_result_value(2, &isnull);
	*hi = tools_key_int64(job, &value);
	*width = tools_window_width((double) *hi - *lo + 1,
								DatumGetInt64(tools_result_value(3, &isnull)),
								per_window, PG_INT64_MAX / 4);
}

/*
 * The last key of the window of width key values after key last, or, where
 * has_last is not set, from key lo on, into end; false where it would pass
 * the largest bigint.
 */
bool
tools_window_end(int64 lo, bool has_last, int64 last, int64 width, int64 *end)
{
	return !(has_last ? pg_add_s64_overflow(last, width, end) :
			 pg_add_s64_overflow(lo, width - 1, end));
}

/*
 * The width of the next key window, after one of span key values held
 * rows, for windows of about per_window rows: where the density holds;
 * four times wider after an empty window, and at most four times wider
 * than the one before, width.
 */
int64
tools_window_width(double span, double rows, int per_window, int64 width)
{
	double		next = rows > 0 ? span * per_window / rows : span * 4;

	next = Min(next, 4.0 * width);
	return (int64) Max(1.0, Min(next, (double) PG_INT64_MAX / 4));
}
