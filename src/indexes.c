/*-------------------------------------------------------------------------
 *
 * indexes.c
 *		Secondary indexes of a target dropped before its jobs copy, and built
 *		again once they are done (tools.config.defer_indexes).
 *
 * Building an index once, from the copied rows, costs much less than
 * inserting every row into it, when its keys come in no useful order.  A job
 * whose configuration defers indexes drops those of its target that nothing
 * else needs: not unique (a primary key, a unique or an exclusion
 * constraint keeps catching bad rows during the copy), not attached to a
 * partitioned table's index, not the replica identity, not the clustered
 * index, not an extension's.  In the transaction that drops them, it
 * records each one's CREATE INDEX statement in tools.deferred_index: a crash
 * or a failure at any point leaves the definition of every index that is
 * not there.
 *
 * The job of a run that completes last on a target builds them again, one
 * transaction per index, each removing its row.  Completing jobs take a
 * session lock on the target in turn and look at their siblings only then,
 * each after its own completion has committed: of jobs completing together
 * the last to take the lock sees all the others completed.  A job that
 * fails while building is failed (its rows are copied); the next call of
 * any job of that run on the target goes on with the indexes left.
 *
 * Definitions are written and run with pg_catalog alone in search_path, so
 * that every other name in them is schema-qualified and none resolves to an
 * object placed earlier in the caller's search_path.
 *
 * IDENTIFICATION
 *		src/indexes.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/comment.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"

#include "tools.h"

/* Set pg_catalog alone in search_path until tools_restore_settings(). */
int
tools_catalog_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * Drop the target's secondary indexes and record how to build them again,
 * in the caller's transaction.  Only a role that could build them again
 * may: the table's owner, with CREATE on its schema and their tablespaces.
 * An index recreated by hand under the name of one still deferred replaces
 * that one's definition: it is the one dropped now.
 */
void
tools_defer_indexes(const ToolsJob *job)
{
	Oid			types[5] = {OIDOID, NAMEOID, TEXTOID, TEXTOID, INT8OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	uint64		n;
	uint64		i;
	Oid		   *indexes;
	bool		isnull;
	int			level;

	values[0] = ObjectIdGetDatum(job->target);
	n = tools_execute("SELECT i.indexrelid,"
					  " pg_catalog.pg_has_role(t.relowner, 'USAGE'),"
					  " pg_catalog.has_schema_privilege(t.relnamespace, 'CREATE'),"
					  " x.reltablespace OPERATOR(pg_catalog.=) 0"
					  " OR pg_catalog.has_tablespace_privilege(x.reltablespace, 'CREATE')"
					  " FROM pg_catalog.pg_index AS i"
					  " JOIN pg_catalog.pg_class AS t ON t.oid OPERATOR(pg_catalog.=) i.indrelid"
					  " JOIN pg_catalog.pg_class AS x ON x.oid OPERATOR(pg_catalog.=) i.indexrelid"
					  " WHERE i.indrelid OPERATOR(pg_catalog.=) $1"
					  " AND t.relkind OPERATOR(pg_catalog.=) " CppAsString2(RELKIND_RELATION)
					  " AND NOT i.indisunique AND NOT i.indisexclusion"
					  " AND NOT i.indisreplident AND NOT i.indisclustered"
					  " AND i.indisvalid AND i.indisready AND i.indislive"
					  " AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint AS k"
					  " WHERE k.conindid OPERATOR(pg_catalog.=) i.indexrelid)"
					  " AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits AS h"
					  " WHERE h.inhrelid OPERATOR(pg_catalog.=) i.indexrelid)"
					  " AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d"
					  " WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
					  " AND d.objid OPERATOR(pg_catalog.=) i.indexrelid"
					  " AND d.deptype OPERATOR(pg_catalog.=) 'e')"
					  " ORDER BY i.indexrelid",
					  1, types, values, NULL, SPI_OK_SELECT);
	if (n == 0)
		return;
	if (!DatumGetBool(tools_result_value(2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s to defer its indexes",
						job->target_name),
				 errdetail("The configuration of job %lld sets defer_indexes: the job drops the table's secondary indexes and builds them again.",
						   (long long) job->job_id),
				 errhint("Run the job as the table's owner, or set defer_indexes to false in tools.config.")));
	indexes = palloc(sizeof(Oid) * n);
	for (i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		indexes[i] = DatumGetObjectId(SPI_getbinval(row, desc, 1, &isnull));
		if (!DatumGetBool(SPI_getbinval(row, desc, 3, &isnull)) ||
			!DatumGetBool(SPI_getbinval(row, desc, 4, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to defer index %s of %s",
							tools_relation_sql(indexes[i]), job->target_name),
					 errdetail("Building it again needs the CREATE privilege on the table's schema and on the index's tablespace."),
					 errhint("Grant those to the role that runs the job, or set defer_indexes to false in tools.config.")));
	}
	SPI_freetuptable(SPI_tuptable);

	for (i = 0; i < n; i++)
	{
		char	   *comment = GetComment(indexes[i], RelationRelationId, 0);
		char	   *name = tools_relation_sql(indexes[i]);

		level = tools_catalog_search_path();
		values[2] = CStringGetTextDatum(pg_get_indexdef_string(indexes[i]));
		tools_restore_settings(level);
		values[1] = DirectFunctionCall1(namein,
										CStringGetDatum(get_rel_name(indexes[i])));
		values[3] = comment ? CStringGetTextDatum(comment) : (Datum) 0;
		nulls[3] = comment ? ' ' : 'n';
		values[4] = Int64GetDatum(job->job_id);
		tools_execute("INSERT INTO " TOOLS_SCHEMA ".deferred_index"
					  " (target, index_name, definition, comment, job_id)"
					  " VALUES ($1, $2, $3, $4, $5)"
					  " ON CONFLICT (target, index_name) DO UPDATE"
					  " SET definition = EXCLUDED.definition, comment = EXCLUDED.comment,"
					  " job_id = EXCLUDED.job_id, deferred = EXCLUDED.deferred",
					  5, types, values, nulls, SPI_OK_INSERT);
		tools_execute(psprintf("DROP INDEX %s", name), 0, NULL, NULL, NULL,
					  SPI_OK_UTILITY);
		ereport(NOTICE,
				(errmsg("index %s of %s is dropped until the run's jobs on it complete",
						name, job->target_name)));
	}
}

/*
 * Whether the role may read a table of the extension (deferred_index,
 * deferred_constraint).  A role that may not cannot have deferred anything
 * there (it could not record it); its jobs leave what others deferred to
 * the jobs of those others.
 */
bool
tools_may_read(const char *table)
{
	Oid			rel = get_relname_relid(table,
										get_namespace_oid(TOOLS_SCHEMA, false));

	return OidIsValid(rel) &&
		pg_class_aclcheck(rel, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
}

/*
 * Whether the job, completed, is the one to build its target's deferred
 * indexes: some are left and every other job of its run on the target has
 * completed.  The caller holds the target's lock.
 */
bool
tools_restore_due(const ToolsJob *job)
{
	Oid			types[3] = {OIDOID, INT8OID, INT8OID};
	Datum		values[3];
	bool		isnull;
	int64		other;

	values[0] = ObjectIdGetDatum(job->target);
	values[1] = Int64GetDatum(job->run_id);
	values[2] = Int64GetDatum(job->job_id);
	if (tools_execute("SELECT FROM " TOOLS_SCHEMA ".deferred_index"
					  " WHERE target::pg_catalog.oid OPERATOR(pg_catalog.=) $1 LIMIT 1",
					  1, types, values, NULL, SPI_OK_SELECT) == 0)
		return false;
	if (tools_execute("SELECT j.job_id" TOOLS_JOB_FROM
					  " WHERE c.target::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
					  " AND j.run_id OPERATOR(pg_catalog.=) $2"
					  " AND j.job_id OPERATOR(pg_catalog.<>) $3"
					  " AND j.state OPERATOR(pg_catalog.<>) 'completed'"
					  " ORDER BY j.job_id LIMIT 1",
					  3, types, values, NULL, SPI_OK_SELECT) == 0)
		return true;
	other = DatumGetInt64(tools_result_value(1, &isnull));
	ereport(NOTICE,
			(errmsg("indexes of %s stay dropped until job %lld completes",
					job->target_name, (long long) other),
			 errdetail("The job of the run that completes last on a table builds its deferred indexes again.")));
	return false;
}

/*
 * Refuse a definition that is not one CREATE INDEX statement of the index
 * named on the job's target.  Names resolve in the caller's search_path,
 * which is pg_catalog alone.
 */
static void
check_definition(const ToolsJob *job, const char *qualified, const char *name,
				 const char *definition)
{
	List	   *stmts = tools_parse(definition);
	IndexStmt  *stmt = NULL;

	if (list_length(stmts) == 1 &&
		IsA(linitial_node(RawStmt, stmts)->stmt, IndexStmt))
		stmt = (IndexStmt *) linitial_node(RawStmt, stmts)->stmt;
	if (stmt == NULL || stmt->concurrent || stmt->idxname == NULL ||
		strcmp(stmt->idxname, name) != 0 ||
		RangeVarGetRelid(stmt->relation, NoLock, true) != job->target)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("definition of deferred index %s is not a CREATE INDEX statement of that index on %s",
						qualified, job->target_name),
				 errdetail("The definition in tools.deferred_index is: %s",
						   definition),
				 errhint("Correct or delete that row of tools.deferred_index, then call the job again.")));
}

/*
 * Build one deferred index of the job's target again, and forget it, in the
 * caller's transaction.  Returns false when none is left.
 */
bool
tools_restore_index(const ToolsJob *job)
{
	Oid			types[2] = {OIDOID, NAMEOID};
	Datum		values[2];
	char	   *name;
	char	   *definition;
	char	   *comment;
	char	   *qualified;
	int			level;

	values[0] = ObjectIdGetDatum(job->target);
	if (tools_execute("SELECT index_name, definition, comment"
					  " FROM " TOOLS_SCHEMA ".deferred_index"
					  " WHERE target::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
					  " ORDER BY index_name LIMIT 1 FOR UPDATE",
					  1, types, values, NULL, SPI_OK_SELECT) == 0)
		return false;
	name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	definition = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	comment = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(name));
	qualified = quote_qualified_identifier(get_namespace_name(get_rel_namespace(job->target)),
										   name);
	SPI_freetuptable(SPI_tuptable);

	if (OidIsValid(get_relname_relid(name, get_rel_namespace(job->target))))
		ereport(NOTICE,
				(errmsg("deferred index %s is not built again: a relation of that name exists",
						qualified),
				 errdetail("Its definition was: %s", definition)));
	else
	{
		level = tools_catalog_search_path();
		check_definition(job, qualified, name, definition);
		ereport(NOTICE,
				(errmsg("building index %s of %s", qualified, job->target_name)));
		tools_execute(definition, 0, NULL, NULL, NULL, SPI_OK_UTILITY);
		if (comment != NULL)
			tools_execute(psprintf("COMMENT ON INDEX %s IS %s", qualified,
								   quote_literal_cstr(comment)),
						  0, NULL, NULL, NULL, SPI_OK_UTILITY);
		tools_restore_settings(level);
	}
	tools_execute("DELETE FROM " TOOLS_SCHEMA ".deferred_index"
				  " WHERE target::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
				  " AND index_name OPERATOR(pg_catalog.=) $2",
				  2, types, values, NULL, SPI_OK_DELETE);
	return true;
}

/* Whether a list of names (String nodes) of a DROP statement has name. */
static bool
names_include(List *objects, const char *name)
{
	ListCell   *lc;

	foreach(lc, objects)
		if (IsA(lfirst(lc), String) && strcmp(strVal(lfirst(lc)), name) == 0)
			return true;
	return false;
}

PG_FUNCTION_INFO_V1(tools_guard_drop);

/*
 * Event trigger on DROP EXTENSION and DROP SCHEMA: tools.deferred_index and
 * tools.deferred_constraint are the only record of the indexes and foreign
 * keys that jobs dropped and have not built again, and go with the
 * extension.  Dropping the extension, or its schema, is refused while they
 * have rows.
 */
Datum
tools_guard_drop(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	DropStmt   *stmt;
	int64		left;
	bool		isnull;
	char	   *example;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "tools.guard_drop() must be called as an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, DropStmt))
		PG_RETURN_NULL();
	stmt = (DropStmt *) trigdata->parsetree;
	if (!((stmt->removeType == OBJECT_EXTENSION &&
		   names_include(stmt->objects, "tools")) ||
		  (stmt->removeType == OBJECT_SCHEMA &&
		   names_include(stmt->objects, TOOLS_SCHEMA))))
		PG_RETURN_NULL();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	tools_execute("SELECT pg_catalog.count(*), pg_catalog.min(d.what) FROM"
				  " (SELECT pg_catalog.format('index %I on %s', index_name, target) AS what"
				  " FROM " TOOLS_SCHEMA ".deferred_index"
				  " UNION ALL SELECT pg_catalog.format('constraint %I on %s', name, relation)"
				  " FROM " TOOLS_SCHEMA ".deferred_constraint) AS d",
				  0, NULL, NULL, NULL, SPI_OK_SELECT);
	left = DatumGetInt64(tools_result_value(1, &isnull));
	example = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (left > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop extension tools while indexes or constraints deferred by its jobs are not built again"),
				 errdetail_plural("tools.deferred_index and tools.deferred_constraint hold the only definition of %lld index or constraint that a job dropped before its copy: %s.",
								  "tools.deferred_index and tools.deferred_constraint hold the only definition of %lld indexes and constraints that jobs dropped before their copy, such as %s.",
								  (unsigned long) left,
								  (long long) left, example),
				 errhint("Resume the jobs of their runs, which build them again when they complete; or build each one yourself from its definition and delete its row.")));
	SPI_finish();
	PG_RETURN_NULL();
}
