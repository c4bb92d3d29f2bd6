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
 * keys.  Every statement also keeps to the job's part, [lower, upper) of the
 * key's first column, when it has one.
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
#include "executor/executor.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pg_list.h"
#include "nodes/plannodes.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "tools.h"

/* A relation (or index, or sequence), schema-qualified and quoted. */
char *
tools_relation_sql(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

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

	return tools_relation_sql(relid);
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
	StringInfoData shape;
	int			i;

	initStringInfo(&buf);
	initStringInfo(&shape);
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
		appendStringInfo(&shape, "%s %d %u/%d %u/%d; ", quote_identifier(name),
						 att->attnum, src->atttypid, src->atttypmod,
						 att->atttypid, att->atttypmod);
		ReleaseSysCache(tuple);

		appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "",
						 quote_identifier(name));
		job->target_attnums[job->ncolumns++] = att->attnum;
	}
	relation_close(rel, AccessShareLock);
	for (i = 0; i < job->nkeys; i++)
		appendStringInfo(&shape, "key %s %u; ", job->keys[i].name,
						 job->keys[i].type);
	job->columns = buf.data;
	job->shape = shape.data;
}

static char *
value_or_null(HeapTuple row, TupleDesc desc, int col, MemoryContext cxt)
{
	char	   *value = SPI_getvalue(row, desc, col);

	return value != NULL ? MemoryContextStrdup(cxt, value) : NULL;
}

/*
 * Fill a job's configuration from a row of TOOLS_JOB_COLUMNS, its text in
 * cxt.
 */
void
tools_job_from_row(ToolsJob *job, HeapTuple row, TupleDesc desc,
				   MemoryContext cxt)
{
	bool		isnull;
	Datum		d;

	job->job_id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
	job->run_id = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	job->config_id = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
	job->source = DatumGetObjectId(SPI_getbinval(row, desc, 4, &isnull));
	job->target = DatumGetObjectId(SPI_getbinval(row, desc, 5, &isnull));
	job->pkey = value_or_null(row, desc, 6, cxt);
	job->condition = value_or_null(row, desc, 7, cxt);
	d = SPI_getbinval(row, desc, 8, &isnull);
	job->batchsize = isnull ? 0 : DatumGetInt32(d);
	job->trunc = DatumGetBool(SPI_getbinval(row, desc, 9, &isnull));
	job->part_lower = value_or_null(row, desc, 10, cxt);
	job->part_upper = value_or_null(row, desc, 11, cxt);
	job->defer_indexes = DatumGetBool(SPI_getbinval(row, desc, 12, &isnull));
	job->planned_pkey = value_or_null(row, desc, 13, cxt);
	job->sequences = DatumGetBool(SPI_getbinval(row, desc, 14, &isnull));
	job->defer_constraints = DatumGetBool(SPI_getbinval(row, desc, 15, &isnull));
}

/*
 * Positions recorded with one key mean nothing for another: refuse a
 * configuration whose key is no longer the key pkey that positions were
 * recorded in (where says by which job or run).
 */
void
tools_check_key_kept(const ToolsJob *job, const char *pkey, const char *where)
{
	if (pkey != NULL && (job->pkey == NULL || strcmp(pkey, job->pkey) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("key of configuration %lld changed from \"%s\" to %s",
						(long long) job->config_id, pkey,
						job->pkey ? psprintf("\"%s\"", job->pkey) : "none"),
				 errdetail("%s recorded its position in the key \"%s\"; continuing from it with another key would skip or copy rows twice.",
						   where, pkey),
				 errhint("Set pkey back to \"%s\", or set trunc of tools.config row %lld and plan a new run, which copies the whole source again.",
						 pkey, (long long) job->config_id)));
}

/* Whether sql parses as "SELECT expression" and nothing more. */
/*
 * The raw parse trees of sql, or NIL where it does not parse: a syntax
 * error is no error here, the caller says what the text should be.
 */
List *
tools_parse(const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *volatile stmts = NIL;

	PG_TRY();
	{
#if PG_VERSION_NUM >= 140000
		stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
#else
		stmts = raw_parser(sql);
#endif
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		stmts = NIL;
	}
	PG_END_TRY();
	return stmts;
}

static bool
is_one_expression(const char *sql)
{
	List	   *stmts = tools_parse(sql);
	SelectStmt *stmt;

	if (list_length(stmts) != 1 ||
		!IsA(linitial_node(RawStmt, stmts)->stmt, SelectStmt))
		return false;
	stmt = (SelectStmt *) linitial_node(RawStmt, stmts)->stmt;
	return list_length(stmt->targetList) == 1 &&
		((ResTarget *) linitial(stmt->targetList))->name == NULL &&
		stmt->op == SETOP_NONE && stmt->fromClause == NIL &&
		stmt->whereClause == NULL && stmt->groupClause == NIL &&
		stmt->havingClause == NULL && stmt->windowClause == NIL &&
		stmt->distinctClause == NIL && stmt->sortClause == NIL &&
		stmt->limitCount == NULL && stmt->limitOffset == NULL &&
		stmt->lockingClause == NIL && stmt->withClause == NULL &&
		stmt->intoClause == NULL && stmt->valuesLists == NIL;
}

/*
 * The condition must be one expression: it is pasted into statements as
 * "(condition) AND ...", and a text such as "true) OR (true" would take
 * the key range out of them, or one ending in a comment the rest.  Both
 * the condition and the condition in parentheses must be an expression.
 */
static void
check_condition(const ToolsJob *job)
{
	if (!is_one_expression(psprintf("SELECT %s", job->condition)) ||
		!is_one_expression(psprintf("SELECT (%s)", job->condition)))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("condition of configuration %lld is not one SQL expression",
						(long long) job->config_id),
				 errdetail("The condition is \"%s\".", job->condition),
				 errhint("Set condition of tools.config row %lld to a boolean expression on the columns of %s, such as id <= 1000000, or to NULL.",
						 (long long) job->config_id, job->source_name)));
}

static bool
has_modulo(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, A_Expr) && ((A_Expr *) node)->kind == AEXPR_OP &&
		strcmp(strVal(llast(((A_Expr *) node)->name)), "%") == 0)
		return true;
	return raw_expression_tree_walker(node, has_modulo, context);
}

/*
 * Whether the job's condition takes a modulo, as a condition that splits a
 * source among configurations by "id % 4 = 1" does.
 */
bool
tools_condition_has_modulo(const ToolsJob *job)
{
	List	   *stmts;
	SelectStmt *stmt;

	if (job->condition == NULL)
		return false;
	stmts = tools_parse(psprintf("SELECT (%s)", job->condition));
	if (list_length(stmts) != 1 ||
		!IsA(linitial_node(RawStmt, stmts)->stmt, SelectStmt))
		return false;
	stmt = (SelectStmt *) linitial_node(RawStmt, stmts)->stmt;
	return has_modulo((Node *) stmt->targetList, NULL);
}

/* Resolve the job's relations. */
void
tools_describe_relations(ToolsJob *job)
{
	job->source_name = relation_name(job->source, "source", job->config_id);
	job->source_foreign = get_rel_relkind(job->source) == RELKIND_FOREIGN_TABLE;
	job->source_fdw = NULL;
	if (job->source_foreign)
	{
		ForeignServer *server = GetForeignServer(GetForeignTable(job->source)->serverid);
		Oid			handler = GetForeignDataWrapper(server->fdwid)->fdwhandler;

		if (OidIsValid(handler))
			job->source_fdw = get_func_name(handler);
	}
	job->target_name = relation_name(job->target, "target", job->config_id);
	if (job->condition != NULL)
		check_condition(job);
}

void
tools_describe_job(ToolsJob *job)
{
	tools_describe_relations(job);
	tools_describe_key(job);
	if (job->job_id != 0)
		tools_check_key_kept(job, job->planned_pkey,
							 psprintf("Job %lld", (long long) job->job_id));
	describe_columns(job);
}

/* The types of the statements' parameters, in the order of PARAM_*. */
Oid *
tools_param_types(const ToolsJob *job)
{
	Oid		   *types = palloc(sizeof(Oid) * Max(NUM_PARAMS(job), 1));
	int			i;

	if (job->nkeys == 0)
		return types;
	for (i = 0; i < job->nkeys; i++)
	{
		types[PARAM_LAST(job, i)] = job->keys[i].type;
		types[PARAM_UPPER(job, i)] = job->keys[i].type;
	}
	types[PARAM_PART_LOWER(job)] = job->keys[0].type;
	types[PARAM_PART_UPPER(job)] = job->keys[0].type;
	return types;
}

/*
 * The parameters of the job's statements: the ends of its part (their
 * values from the job's part_lower and part_upper), and the ends of a batch
 * NULL, for the caller to set where its statement uses them.
 */
ParamListInfo
tools_params(const ToolsJob *job, Datum part_lower, Datum part_upper)
{
	ParamListInfo params = makeParamList(NUM_PARAMS(job));
	Oid		   *types = tools_param_types(job);
	int			i;

	for (i = 0; i < NUM_PARAMS(job); i++)
	{
		params->params[i].isnull = true;
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = types[i];
	}
	if (job->nkeys == 0)
		return params;
	params->params[PARAM_PART_LOWER(job)].value = part_lower;
	params->params[PARAM_PART_LOWER(job)].isnull = job->part_lower == NULL;
	params->params[PARAM_PART_UPPER(job)].value = part_upper;
	params->params[PARAM_PART_UPPER(job)].isnull = job->part_upper == NULL;
	return params;
}

/* The key columns, each followed by suffix: "a, b" or "a DESC, b DESC". */
char *
tools_key_list(const ToolsJob *job, const char *suffix)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < job->nkeys; i++)
		appendStringInfo(&buf, "%s%s%s", i > 0 ? ", " : "", job->keys[i].name,
						 suffix);
	return buf.data;
}

/* "a IS NOT NULL AND b IS NOT NULL" */
char *
tools_key_not_null(const ToolsJob *job)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < job->nkeys; i++)
		appendStringInfo(&buf, "%s%s IS NOT NULL", i > 0 ? " AND " : "",
						 job->keys[i].name);
	return buf.data;
}

/*
 * Compare key columns i to n - 1 with their parameters, one column after the
 * other: (a, b) > (x, y) is a >= x AND NOT (a = x AND b <= y).  The first
 * column's comparison is an index range, and a planner estimates the whole
 * about as well as that range: the part under NOT only removes the rows of
 * one value of a.
 */
static void
append_column_compare(StringInfo buf, const ToolsJob *job, int i, int n,
					  int strategy, int first, bool target)
{
	const ToolsKeyColumn *col = &job->keys[i];
	const char *name = target ? col->target_expr : col->name;
	bool		greater = strategy == BTGreaterStrategyNumber ||
		strategy == BTGreaterEqualStrategyNumber;

	if (i == n - 1)
	{
		appendStringInfo(buf, "%s %s $%d", name, col->ops[strategy],
						 first + i + 1);
		return;
	}
	appendStringInfo(buf, "%s %s $%d AND NOT (%s %s $%d AND ",
					 name,
					 col->ops[greater ? BTGreaterEqualStrategyNumber : BTLessEqualStrategyNumber],
					 first + i + 1,
					 name, col->ops[BTEqualStrategyNumber], first + i + 1);
	/* NOT (x > y) is x <= y, NOT (x >= y) is x < y, and the other way */
	append_column_compare(buf, job, i + 1, n,
						  strategy >= BTGreaterEqualStrategyNumber ?
						  strategy - 3 : strategy + 3, first, target);
	appendStringInfoChar(buf, ')');
}

/*
 * Compare the first n key columns, in key order, with the parameters from
 * number first on, by a btree strategy (<, <=, >= or >).  Several columns
 * are compared as rows where the planner takes that as an index range;
 * otherwise column by column, in a form that a foreign data wrapper sends to
 * the remote server whole.  On the target's side, each column is taken as
 * the source's key type and collation (ToolsKeyColumn.target_expr), so
 * that a range holds the same rows on both sides.
 */
static void
append_key_compare(StringInfo buf, const ToolsJob *job, int n, int strategy,
				   int first, bool target)
{
	int			i;

	if (n > 1 && job->row_compare && !target)
	{
		appendStringInfo(buf, "ROW(%s) %s ROW(", tools_key_list(job, ""),
						 job->keys[0].ops[strategy]);
		for (i = 0; i < n; i++)
			appendStringInfo(buf, "%s$%d", i > 0 ? ", " : "", first + i + 1);
		appendStringInfoChar(buf, ')');
	}
	else
		append_column_compare(buf, job, 0, n, strategy, first, target);
}

/*
 * WHERE clause of a batch: the condition, the key range of the batch, and
 * the job's part of the key range (for a job without a key, the condition
 * alone).  The batch's lower end is excluded
 * (absent for the first batch, which takes every non-NULL key); its upper
 * end is included, and without one the batch is open above.
 */
static void
append_where(StringInfo buf, const ToolsJob *job, bool lower, bool upper,
			 bool target)
{
	if (job->nkeys == 0)
	{
		/* No key: the whole source, in one batch. */
		if (job->condition != NULL)
			appendStringInfo(buf, " WHERE (%s)", job->condition);
		return;
	}
	appendStringInfoString(buf, " WHERE ");
	if (job->condition != NULL)
		appendStringInfo(buf, "(%s) AND ", job->condition);
	if (lower)
		append_key_compare(buf, job, job->nkeys, BTGreaterStrategyNumber,
						   PARAM_LAST(job, 0), target);
	else
		appendStringInfoString(buf, tools_key_not_null(job));
	if (job->part_lower != NULL)
	{
		appendStringInfoString(buf, " AND ");
		append_key_compare(buf, job, 1, BTGreaterEqualStrategyNumber,
						   PARAM_PART_LOWER(job), target);
	}
	if (job->part_upper != NULL)
	{
		appendStringInfoString(buf, " AND ");
		append_key_compare(buf, job, 1, BTLessStrategyNumber,
						   PARAM_PART_UPPER(job), target);
	}
	if (upper)
	{
		appendStringInfoString(buf, " AND ");
		append_key_compare(buf, job, job->nkeys, BTLessEqualStrategyNumber,
						   PARAM_UPPER(job, 0), target);
	}
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
	appendStringInfo(&buf, "SELECT %s FROM %s", tools_key_list(job, ""),
					 job->source_name);
	append_where(&buf, job, lower, false, false);
	if (last)
		appendStringInfo(&buf, " ORDER BY %s LIMIT 1",
						 tools_key_list(job, " DESC"));
	else
		appendStringInfo(&buf, " ORDER BY %s OFFSET %d LIMIT 1",
						 tools_key_list(job, ""), job->batchsize - 1);
	return buf.data;
}

/*
 * The smallest and largest key of the rest of the job's range, and how many
 * rows it holds; no row when it holds none.  The count keeps the planner
 * from turning min and max into ORDER BY ... LIMIT 1, which some wrappers
 * send to a remote server that sorts for it (tools_use_windows()); the
 * aggregates go to the remote server whole.
 */
char *
tools_span_sql(const ToolsJob *job, bool lower)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT pg_catalog.min(%s), pg_catalog.max(%s), pg_catalog.count(*) FROM %s",
					 job->keys[0].name, job->keys[0].name, job->source_name);
	append_where(&buf, job, lower, false, false);
	appendStringInfoString(&buf, " HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0");
	return buf.data;
}

/* Read the rows of one key range, in the order of the insert's columns. */
char *
tools_select_sql(const ToolsJob *job, bool lower)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT %s FROM %s", job->columns, job->source_name);
	append_where(&buf, job, lower, true, false);
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

/*
 * Select list from the rows of the job's whole range in the source, or in
 * the target, where the condition and the part apply too.
 */
char *
tools_range_sql(const ToolsJob *job, const char *list, bool lower, bool upper,
				bool target)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT %s FROM %s", list,
					 target ? job->target_name : job->source_name);
	append_where(&buf, job, lower, upper, target);
	return buf.data;
}

/*
 * WHERE clause of the rows that a repair statement looks at, on one side:
 * the key range (lower, upper] of the job's range, or, where keys is an
 * SQL array of keys of a one-column key, those keys of the job's range.
 */
static void
append_repair_where(StringInfo buf, const ToolsJob *job, bool lower,
					bool upper, const char *keys, bool target)
{
	append_where(buf, job, keys == NULL && lower, keys == NULL && upper, target);
	if (keys != NULL)
		appendStringInfo(buf, " AND %s %s ANY (%s)",
						 target ? job->keys[0].target_expr : job->keys[0].name,
						 job->keys[0].ops[BTEqualStrategyNumber], keys);
}

/*
 * Make a part of the job's range in the target equal to the source (a key
 * range, or the rows of some keys, append_repair_where()): the source's
 * rows there (source_list, the columns in the target's order, each cast to
 * its target column's type where the two differ, which keeps its name),
 * then in one statement the target's rows whose key the source lacks
 * deleted, those whose key both have updated where their text differs, and
 * the source's rows whose key the target lacks inserted.  Rows that did not
 * change stay as they are, so that no foreign key's action fires for them.
 * The rows to update are found by a join (a lookup per row in the source's
 * rows would cost their number squared), and the rows to insert by an
 * outer join; each joins the target's rows with the source's renamed
 * tools_1, tools_2, ..., names that no unqualified column of the range's
 * WHERE clause can mean.  No statement that writes the target compares
 * text or correlates a subquery with it, which Citus would refuse for a
 * table of its own.  Returns the rows deleted, updated and inserted, and
 * the keys that the source's rows hold more than once, for which the
 * caller fails the statement; with deltas (a key of one integer column),
 * then the keys of the rows deleted and of those inserted, as two bigint
 * arrays.
 */
char *
tools_repair_sql(const ToolsJob *job, bool lower, bool upper,
				 const char *source_list, const char *keys, bool deltas)
{
	StringInfoData buf;
	StringInfoData match;
	StringInfoData where;
	StringInfoData cmatch;
	StringInfoData tkeys;
	StringInfoData renamed;
	StringInfoData scols;
	StringInfoData ccols;
	StringInfoData tcols;
	const char *name;
	const char *returning = deltas ?
		psprintf("(%s)::pg_catalog.int8", job->keys[0].target_expr) : "1";
	int			i;
	int			k;

	initStringInfo(&match);
	initStringInfo(&cmatch);
	initStringInfo(&tkeys);
	for (k = 0; k < job->nkeys; k++)
	{
		AttrNumber	attnum = get_attnum(job->target, job->keys[k].attname);
		const char *sep = k > 0 ? " AND " : "";

		for (i = 0; i < job->ncolumns && job->target_attnums[i] != attnum; i++)
			;
		Assert(i < job->ncolumns);
		appendStringInfo(&match, "%ss.%s OPERATOR(pg_catalog.=) t.%s",
						 sep, job->keys[k].name, job->keys[k].name);
		appendStringInfo(&cmatch, " AND c.tools_%d OPERATOR(pg_catalog.=) t.%s",
						 i + 1, job->keys[k].name);
		appendStringInfo(&tkeys, "%st.%s", k > 0 ? ", " : "", job->keys[k].name);
	}
	initStringInfo(&where);
	append_repair_where(&where, job, lower, upper, keys, true);
	initStringInfo(&renamed);
	initStringInfo(&scols);
	initStringInfo(&ccols);
	initStringInfo(&tcols);
	for (i = 0; i < job->ncolumns; i++)
	{
		const char *sep = i > 0 ? ", " : "";

		name = quote_identifier(get_attname(job->target, job->target_attnums[i], false));
		appendStringInfo(&renamed, "%ss.%s AS tools_%d", sep, name, i + 1);
		appendStringInfo(&scols, "%ss.%s", sep, name);
		appendStringInfo(&ccols, "%sc.tools_%d", sep, i + 1);
		appendStringInfo(&tcols, "%st.%s", sep, name);
	}

	initStringInfo(&buf);
	appendStringInfo(&buf, "WITH s AS MATERIALIZED (SELECT %s FROM %s",
					 source_list, job->source_name);
	append_repair_where(&buf, job, lower, upper, keys, false);
	appendStringInfo(&buf, "), d(k) AS (DELETE FROM %s AS t%s AND NOT EXISTS"
					 " (SELECT FROM s WHERE %s) RETURNING %s)",
					 job->target_name, where.data, match.data, returning);
	appendStringInfo(&buf, ", c AS MATERIALIZED (SELECT c.* FROM (SELECT %s FROM s) AS c,"
					 " %s AS t%s%s"
					 " AND ROW(%s)::pg_catalog.text IS DISTINCT FROM ROW(%s)::pg_catalog.text)",
					 renamed.data, job->target_name, where.data, cmatch.data,
					 ccols.data, tcols.data);
	appendStringInfo(&buf, ", u AS (UPDATE %s AS t SET (%s) = ROW(%s) FROM c%s%s"
					 " RETURNING 1)",
					 job->target_name, job->columns, ccols.data, where.data,
					 cmatch.data);
	appendStringInfo(&buf, ", i(k) AS (INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE"
					 " SELECT %s FROM s LEFT JOIN (SELECT %s FROM %s AS t%s) AS t ON %s"
					 " WHERE t.%s IS NULL RETURNING %s)",
					 job->target_name, job->columns, scols.data, tkeys.data,
					 job->target_name, where.data, match.data,
					 job->keys[0].name, returning);
	appendStringInfo(&buf, " SELECT (SELECT pg_catalog.count(*) FROM d),"
					 " (SELECT pg_catalog.count(*) FROM u),"
					 " (SELECT pg_catalog.count(*) FROM i),"
					 " (SELECT pg_catalog.count(*) FROM (SELECT FROM s GROUP BY %s"
					 " HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1) AS twice)",
					 tools_key_list(job, ""));
	if (deltas)
		appendStringInfoString(&buf, ", ARRAY(SELECT k FROM d), ARRAY(SELECT k FROM i)");
	return buf.data;
}

/*
 * The keys of a relation's rows written since a transaction ($1, as text,
 * an xid: a row version whose xmin is no older), the next at most limit of
 * them in the key's order, after key $2 where after is set, within the
 * job's part of the key range (its integer key's ends, as numbers), so
 * that each part's job reads its own rows.  relation and key are SQL
 * names, here or on a source's server.  age() counts from one point for
 * the whole statement, so the comparison is exact within 2^31
 * transactions; a row frozen longer ago than that may be read too, which
 * costs only its comparison.  OFFSET 0 keeps the ORDER BY and LIMIT from
 * turning the scan into a walk of the key's index.
 */
char *
tools_changed_keys_sql(const ToolsJob *job, const char *relation,
					   const char *key, bool after, int64 limit)
{
	StringInfoData part;
	Datum		end;

	initStringInfo(&part);
	if (job->part_lower != NULL)
	{
		end = tools_key_value(&job->keys[0], job->part_lower);
		appendStringInfo(&part, " AND %s OPERATOR(pg_catalog.>=) %lld",
						 key, (long long) tools_key_int64(job, &end));
	}
	if (job->part_upper != NULL)
	{
		end = tools_key_value(&job->keys[0], job->part_upper);
		appendStringInfo(&part, " AND %s OPERATOR(pg_catalog.<) %lld",
						 key, (long long) tools_key_int64(job, &end));
	}
	return psprintf("SELECT s.k FROM (SELECT %s AS k FROM %s"
					" WHERE pg_catalog.age(xmin) OPERATOR(pg_catalog.<=)"
					" pg_catalog.age($1::pg_catalog.text::pg_catalog.xid)"
					" AND %s IS NOT NULL%s%s OFFSET 0) AS s"
					" ORDER BY 1 LIMIT %lld",
					key, relation, key, part.data,
					after ? psprintf(" AND %s OPERATOR(pg_catalog.>) $2", key) : "",
					(long long) limit);
}

/* The key ranges of tools_range_keys_sql() and tools_range_counts_sql(). */
#define RANGES_FROM \
	" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[])," \
	" pg_catalog.unnest($2::pg_catalog.int8[])) AS tools_ranges(f, l)"

/* A relation's rows within one of those ranges, found through its key. */
static char *
range_rows_sql(const char *relation, const char *key)
{
	return psprintf("FROM %s AS tools_rel WHERE %s OPERATOR(pg_catalog.>=) tools_ranges.f"
					" AND %s OPERATOR(pg_catalog.<=) tools_ranges.l",
					relation, key, key);
}

/*
 * The keys of a relation (its key as bigint) within some key ranges: the
 * first and the last key of each as two bigint arrays, $1 and $2, each
 * range read through the key's index.  relation and key are SQL names,
 * here or on a source's server.
 */
char *
tools_range_keys_sql(const char *relation, const char *key)
{
	return psprintf("SELECT tools_keys.k" RANGES_FROM ","
					" LATERAL (SELECT %s::pg_catalog.int8 AS k %s) AS tools_keys",
					key, range_rows_sql(relation, key));
}

/*
 * The number of a relation's rows within each of the same key ranges:
 * each range's first key and its count, in the ranges' order, each range
 * counted through the key's index (TOOLS_KEY_INDEXED_SQL says where that
 * reads the index alone).
 */
char *
tools_range_counts_sql(const char *relation, const char *key)
{
	return psprintf("SELECT tools_ranges.f, (SELECT pg_catalog.count(*) %s)" RANGES_FROM,
					range_rows_sql(relation, key));
}

/* Count the rows of the job that no key range can reach. */
char *
tools_null_keys_sql(const ToolsJob *job)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT pg_catalog.count(*) FROM %s WHERE ",
					 job->source_name);
	if (job->condition != NULL)
		appendStringInfo(&buf, "(%s) AND ", job->condition);
	appendStringInfoChar(&buf, '(');
	for (i = 0; i < job->nkeys; i++)
		appendStringInfo(&buf, "%s%s IS NULL", i > 0 ? " OR " : "",
						 job->keys[i].name);
	appendStringInfoChar(&buf, ')');
	return buf.data;
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
#if PG_VERSION_NUM < 140000
	/* Before 14, an INSERT's query is among the plans of its ModifyTable. */
	if (IsA(plan, ModifyTable))
	{
		ListCell   *lc;

		foreach(lc, ((ModifyTable *) plan)->plans)
			if (plan_reads_all(lfirst(lc), sorted_above))
				return true;
	}
#endif
	return plan_reads_all(plan->lefttree, sorted_above) ||
		plan_reads_all(plan->righttree, sorted_above);
}

/*
 * Whether test holds for a statement of the generic plan of a prepared
 * statement.
 */
bool
tools_plan_any(SPIPlanPtr plan, bool (*test) (PlannedStmt *stmt, void *arg),
			   void *arg)
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
		result = result || test(lfirst_node(PlannedStmt, lc), arg);
#if PG_VERSION_NUM >= 140000
	ReleaseCachedPlan(cplan, NULL);
#else
	ReleaseCachedPlan(cplan, false);
#endif
	return result;
}

/*
 * Whether test holds for a statement of the generic plan of sql, prepared
 * for the moment with parameters of the given types.  The caller is
 * connected to SPI, and its memory context stays current.
 */
bool
tools_sql_plan_any(const char *sql, int nargs, Oid *types,
				   bool (*test) (PlannedStmt *stmt, void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);
	bool		result;

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	result = tools_plan_any(plan, test, arg);
	SPI_freeplan(plan);
	/* SPI leaves its own context current: the caller's allocations go on. */
	MemoryContextSwitchTo(cxt);
	return result;
}

static bool
stmt_reads_all(PlannedStmt *stmt, void *arg)
{
	return plan_reads_all(stmt->planTree, false);
}

/* Whether the generic plan of a job statement reads all its source. */
bool
tools_plan_reads_all(SPIPlanPtr plan)
{
	return tools_plan_any(plan, stmt_reads_all, NULL);
}

static bool
stmt_reads_relation(PlannedStmt *stmt, void *arg)
{
	return list_member_oid(stmt->relationOids, *(Oid *) arg);
}

/*
 * The error of a job whose source reads its target, and, where a query run
 * while the source was read used the target, that query's text.
 */
static void
source_reads_target(const ToolsJob *job, const char *query)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
			 errmsg("source %s of configuration %lld reads its target %s",
					job->source_name, (long long) job->config_id,
					job->target_name),
			 query == NULL ?
			 errdetail("The job would read the rows it writes: emptying the target would empty the source, and copying would double its rows.") :
			 errdetail("A query run while the source was read uses the target: %s. The job would read the rows it writes: emptying the target would empty the source, and copying would double its rows.",
					   query),
			 errhint("Set source of tools.config row %lld to the relation that holds the rows to copy.",
					 (long long) job->config_id)));
}

/*
 * The guard on a job's reads of its source (tools_guard_source()): while
 * it is set, a query that starts inside another one (a query of a function
 * the source calls, say) and uses the job's target is refused, unless a
 * trigger runs it (a foreign key's check, or the target's own triggers).
 * The executor's hooks count the queries started and not yet ended since
 * the guard was set: the job's own statements start at depth 0.
 */
static const ToolsJob *guarded_job = NULL;
static int	guarded_depth = 0;
static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;

static void
guard_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (guarded_job != NULL && guarded_depth > 0 &&
		list_member_oid(queryDesc->plannedstmt->relationOids,
						guarded_job->target) &&
		DatumGetInt32(OidFunctionCall0(F_PG_TRIGGER_DEPTH)) == 0)
		source_reads_target(guarded_job, queryDesc->sourceText);
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
	if (guarded_job != NULL)
		guarded_depth++;
}

static void
guard_executor_end(QueryDesc *queryDesc)
{
	if (guarded_job != NULL && guarded_depth > 0)
		guarded_depth--;
	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

/* Install the guard's hooks, once per process. */
void
tools_init_guard(void)
{
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = guard_executor_start;
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = guard_executor_end;
}

/*
 * Guard the job's reads of its source from now on, or, with NULL, no
 * longer.  Call it where no query of this process is running.
 */
void
tools_guard_source(const ToolsJob *job)
{
	guarded_job = job;
	guarded_depth = 0;
}

/*
 * Where the job's source stands (TOOLS_SNAPSHOT_SQL): the oldest
 * transaction running on its server, with its epoch, and that server's
 * system identifier.  False where that is not known: the source is not a
 * table or a materialized view here, nor a postgres_fdw table of one that
 * the job can ask over a connection of its own (14 and later; with keep,
 * a context as long-lived as the job's description, the connection is
 * kept for the questions after).  The caller is connected to SPI.
 */
bool
tools_source_snapshot(ToolsJob *job, ToolsSnapshot *snap, MemoryContext keep)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull[5];
	bool		keeps_xmin;
	int			i;

	if (job->source_foreign)
		return tools_remote_snapshot(job, snap, keep);
	values[0] = CStringGetTextDatum(job->source_name);
	tools_execute(TOOLS_SNAPSHOT_SQL, 1, types, values, NULL, SPI_OK_SELECT);
	snap->xmin = DatumGetInt64(tools_result_value(1, &isnull[0]));
	snap->xmax = DatumGetInt64(tools_result_value(2, &isnull[1]));
	snap->system = DatumGetInt64(tools_result_value(3, &isnull[2]));
	keeps_xmin = DatumGetBool(tools_result_value(4, &isnull[3]));
	snap->relation = DatumGetInt64(tools_result_value(5, &isnull[4]));
	for (i = 0; i < 5; i++)
		if (isnull[i])
			return false;
	return keeps_xmin;
}

/*
 * Refuse a source that reads the target: a view over it, or a view whose
 * query reads it among others, or a postgres_fdw table that points back at
 * it (by its server's options, tools_fdw_points_here(), or, from 14 on, as
 * the remote server tells, tools_remote_reads_target()),
 * or a view that calls a function that reads it, as the guard sees when
 * one row of the view is read here.  Such a job would read what it
 * writes: a trunc run would empty its own source, or wait for ever on its
 * own lock, another would double every row.  The batches read under the
 * guard too, for a function that reads the target only for some rows.  The
 * caller is connected to SPI.
 */
void
tools_check_source(const ToolsJob *job)
{
	Oid			target = job->target;
	bool		reads;

	reads = tools_sql_plan_any(psprintf("SELECT FROM %s", job->source_name),
							   0, NULL, stmt_reads_relation, &target);
	if (!reads && job->source_fdw != NULL &&
		strcmp(job->source_fdw, "postgres_fdw_handler") == 0)
		reads = tools_fdw_points_here(job) ||
			tools_remote_reads_target((ToolsJob *) job);
	if (reads)
		source_reads_target(job, NULL);

	if (get_rel_relkind(job->source) == RELKIND_VIEW)
	{
		tools_guard_source(job);
		tools_execute(psprintf("SELECT %s FROM %s LIMIT 1", job->columns,
							   job->source_name),
					  0, NULL, NULL, NULL, SPI_OK_SELECT);
		tools_guard_source(NULL);
		SPI_freetuptable(SPI_tuptable);
	}
}
