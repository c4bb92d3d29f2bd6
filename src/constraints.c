/*-------------------------------------------------------------------------
 *
 * constraints.c
 *		Foreign keys of a run's targets dropped before its jobs copy, and
 *		added back once they are done (tools.config.defer_constraints).
 *
 * A foreign key checks each row inserted into its table with a trigger:
 * jobs into such a target cannot write the way COPY does, jobs of one
 * priority fail on a parent row not yet copied, and a trunc run cannot
 * empty a table that another references.  As pgcopydb does, the data comes
 * first and the constraints after it.  The first job of a run to start
 * drops every foreign key that belongs to or references a target of the run
 * whose configuration defers constraints, recording each one's definition
 * in tools.deferred_constraint in the same transaction: a crash or a
 * failure at any point leaves the definition of every key that is not
 * there.  Starts of a run's jobs are ordered by the run's row lock, so the
 * later ones find the keys gone.
 *
 * A key comes back when every job of the run on the two tables it joins
 * has completed: the completing job that sees it so adds it NOT VALID (a
 * short lock), then validates it (which lets writes go on) and forgets it,
 * one transaction each.  A violation fails that job with the server's
 * error, which names the constraint and the key of a row without its
 * parent; the constraint stays, NOT VALID, and recorded, and the job's next
 * call validates it again.  Completing jobs look in turn, holding the run's
 * constraint lock, each after its own completion has committed: of jobs
 * completing together the last to take the lock sees the others completed.
 *
 * As for deferred indexes, definitions are written and run with pg_catalog
 * alone in search_path, and a recorded definition runs only if it parses as
 * the one constraint of that name on that table; row level security on the
 * table lets a role see only the keys of tables whose owner's rights it has.
 *
 * IDENTIFICATION
 *		src/constraints.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "tools.h"

/* The targets of the job's run whose configurations defer constraints. */
#define DEFERRING_TARGETS_SQL \
	"SELECT c.target::pg_catalog.oid" TOOLS_JOB_FROM \
	" WHERE j.run_id OPERATOR(pg_catalog.=) $1 AND c.defer_constraints"

/*
 * At the first start of a job of its run (no job of the run has started):
 * drop the foreign keys that belong to or reference a target of the run
 * that defers constraints, recording how to add them back, in the caller's
 * transaction.  Keys recorded by an earlier run on these tables are the
 * run's to add back now.  Only the owner of a key's table may.  The caller
 * holds the run's row lock.
 */
void
tools_defer_constraints(const ToolsJob *job)
{
	Oid			types[5] = {INT8OID, OIDOID, NAMEOID, TEXTOID, OIDOID};
	Datum		values[5];
	SPITupleTable *keys;
	uint64		n;
	uint64		i;
	bool		isnull;

	values[0] = Int64GetDatum(job->run_id);
	if (tools_execute("SELECT FROM " TOOLS_SCHEMA ".job"
					  " WHERE run_id OPERATOR(pg_catalog.=) $1 AND ts IS NOT NULL LIMIT 1",
					  1, types, values, NULL, SPI_OK_SELECT) > 0 ||
		tools_execute(DEFERRING_TARGETS_SQL " LIMIT 1", 1, types, values, NULL,
					  SPI_OK_SELECT) == 0)
		return;
	tools_execute("UPDATE " TOOLS_SCHEMA ".deferred_constraint"
				  " SET run_id = $1 WHERE run_id OPERATOR(pg_catalog.<>) $1"
				  " AND (relation::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (" DEFERRING_TARGETS_SQL ")"
				  " OR referenced::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (" DEFERRING_TARGETS_SQL "))",
				  1, types, values, NULL, SPI_OK_UPDATE);

	n = tools_execute("SELECT k.conrelid, k.conname, k.confrelid,"
					  " pg_catalog.pg_has_role(t.relowner, 'USAGE')"
					  " FROM pg_catalog.pg_constraint AS k"
					  " JOIN pg_catalog.pg_class AS t ON t.oid OPERATOR(pg_catalog.=) k.conrelid"
					  " WHERE k.contype OPERATOR(pg_catalog.=) 'f'"
					  " AND k.conparentid OPERATOR(pg_catalog.=) 0"
					  " AND (k.conrelid OPERATOR(pg_catalog.=) ANY (" DEFERRING_TARGETS_SQL ")"
					  " OR k.confrelid OPERATOR(pg_catalog.=) ANY (" DEFERRING_TARGETS_SQL "))"
					  " ORDER BY k.conrelid, k.conname",
					  1, types, values, NULL, SPI_OK_SELECT);
	keys = SPI_tuptable;
	for (i = 0; i < n; i++)
		if (!DatumGetBool(SPI_getbinval(keys->vals[i], keys->tupdesc, 4, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of table %s to defer its foreign key \"%s\"",
							tools_relation_sql(DatumGetObjectId(SPI_getbinval(keys->vals[i], keys->tupdesc, 1, &isnull))),
							SPI_getvalue(keys->vals[i], keys->tupdesc, 2)),
					 errdetail("The configuration of job %lld sets defer_constraints: the run drops the foreign keys of its targets and adds them back.",
							   (long long) job->job_id),
					 errhint("Run the job as the owner of the tables, or set defer_constraints to false in tools.config.")));

	for (i = 0; i < n; i++)
	{
		Oid			relation = DatumGetObjectId(SPI_getbinval(keys->vals[i], keys->tupdesc, 1, &isnull));
		char	   *name = SPI_getvalue(keys->vals[i], keys->tupdesc, 2);
		Oid			referenced = DatumGetObjectId(SPI_getbinval(keys->vals[i], keys->tupdesc, 3, &isnull));
		int			level = tools_catalog_search_path();

		values[1] = ObjectIdGetDatum(relation);
		values[2] = DirectFunctionCall1(namein, CStringGetDatum(name));
		tools_execute("SELECT pg_catalog.pg_get_constraintdef(k.oid)"
					  " FROM pg_catalog.pg_constraint AS k"
					  " WHERE k.conrelid OPERATOR(pg_catalog.=) $2"
					  " AND k.conname OPERATOR(pg_catalog.=) $3",
					  3, types, values, NULL, SPI_OK_SELECT);
		values[3] = CStringGetTextDatum(SPI_getvalue(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1));
		tools_restore_settings(level);
		values[4] = ObjectIdGetDatum(referenced);
		tools_execute("INSERT INTO " TOOLS_SCHEMA ".deferred_constraint"
					  " (run_id, relation, name, definition, referenced)"
					  " VALUES ($1, $2, $3, $4, $5)"
					  " ON CONFLICT (relation, name) DO UPDATE"
					  " SET definition = EXCLUDED.definition, run_id = EXCLUDED.run_id,"
					  " referenced = EXCLUDED.referenced, deferred = EXCLUDED.deferred",
					  5, types, values, NULL, SPI_OK_INSERT);
		tools_execute(psprintf("ALTER TABLE %s DROP CONSTRAINT %s",
							   tools_relation_sql(relation), quote_identifier(name)),
					  0, NULL, NULL, NULL, SPI_OK_UTILITY);
		ereport(NOTICE,
				(errmsg("foreign key \"%s\" of %s is dropped until the run's jobs on %s and %s complete",
						name, tools_relation_sql(relation), tools_relation_sql(relation),
						tools_relation_sql(referenced))));
	}
}

/*
 * Refuse a recorded definition that does not add the recorded foreign key
 * to the recorded table: the statement built from it must parse as one
 * ALTER TABLE of that table adding one foreign key of that name.  Names
 * resolve in the caller's search_path, which is pg_catalog alone.
 */
static void
check_definition(Oid relation, const char *name, const char *sql)
{
	List	   *stmts = tools_parse(sql);
	AlterTableStmt *stmt = NULL;
	AlterTableCmd *cmd = NULL;
	Constraint *con = NULL;

	if (list_length(stmts) == 1 &&
		IsA(linitial_node(RawStmt, stmts)->stmt, AlterTableStmt))
		stmt = (AlterTableStmt *) linitial_node(RawStmt, stmts)->stmt;
	if (stmt != NULL && list_length(stmt->cmds) == 1)
		cmd = linitial_node(AlterTableCmd, stmt->cmds);
	if (cmd != NULL && cmd->subtype == AT_AddConstraint && cmd->def != NULL &&
		IsA(cmd->def, Constraint))
		con = (Constraint *) cmd->def;
	if (con == NULL || con->contype != CONSTR_FOREIGN || con->conname == NULL ||
		strcmp(con->conname, name) != 0 ||
		RangeVarGetRelid(stmt->relation, NoLock, true) != relation)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("definition of deferred foreign key \"%s\" of %s does not add that foreign key",
						name, tools_relation_sql(relation)),
				 errdetail("The statement built from it is: %s", sql),
				 errhint("Correct its row in tools.deferred_constraint, or delete the row.")));
}

/*
 * Add back, or validate, one foreign key that the job's run deferred and
 * whose tables' jobs of the run have all completed; false when none is
 * left.  One step per call: adding it NOT VALID, then validating it and
 * forgetting it.  The caller is connected to SPI.
 */
bool
tools_restore_constraint(const ToolsJob *job)
{
	Oid			types[3] = {INT8OID, OIDOID, NAMEOID};
	Datum		values[3];
	LOCKTAG		tag;
	Oid			relation;
	char	   *name;
	char	   *definition;
	char	   *relation_name;
	bool		isnull;
	int			level;

	/* Held to the end of the step's transaction. */
	TOOLS_SET_LOCKTAG(tag, job->run_id, TOOLS_CONSTRAINT_LOCK_SPACE);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);

	values[0] = Int64GetDatum(job->run_id);
	values[1] = ObjectIdGetDatum(job->target);
	if (tools_execute("SELECT d.relation::pg_catalog.oid, d.name, d.definition"
					  " FROM " TOOLS_SCHEMA ".deferred_constraint AS d"
					  " WHERE d.run_id OPERATOR(pg_catalog.=) $1"
					  " AND $2 OPERATOR(pg_catalog.=) ANY (ARRAY[d.relation::pg_catalog.oid,"
					  " d.referenced::pg_catalog.oid])"
					  " AND NOT EXISTS (SELECT" TOOLS_JOB_FROM
					  " WHERE j.run_id OPERATOR(pg_catalog.=) $1"
					  " AND c.target::pg_catalog.oid OPERATOR(pg_catalog.=) ANY"
					  " (ARRAY[d.relation::pg_catalog.oid, d.referenced::pg_catalog.oid])"
					  " AND j.state OPERATOR(pg_catalog.<>) 'completed')"
					  " ORDER BY d.relation, d.name LIMIT 1",
					  2, types, values, NULL, SPI_OK_SELECT) == 0)
		return false;
	relation = DatumGetObjectId(tools_result_value(1, &isnull));
	name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	definition = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	relation_name = tools_relation_sql(relation);
	values[1] = ObjectIdGetDatum(relation);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(name));

	level = tools_catalog_search_path();
	if (tools_execute("SELECT k.convalidated FROM pg_catalog.pg_constraint AS k"
					  " WHERE k.conrelid OPERATOR(pg_catalog.=) $2"
					  " AND k.conname OPERATOR(pg_catalog.=) $3"
					  " AND k.contype OPERATOR(pg_catalog.=) 'f'",
					  3, types, values, NULL, SPI_OK_SELECT) == 0)
	{
		char	   *sql = psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID",
								   relation_name, quote_identifier(name),
								   definition);

		check_definition(relation, name, sql);
		ereport(NOTICE,
				(errmsg("adding foreign key \"%s\" of %s back", name,
						relation_name)));
		tools_execute(sql, 0, NULL, NULL, NULL, SPI_OK_UTILITY);
	}
	else
	{
		if (!DatumGetBool(tools_result_value(1, &isnull)))
		{
			ereport(NOTICE,
					(errmsg("validating foreign key \"%s\" of %s", name,
							relation_name)));
			tools_execute(psprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s",
								   relation_name, quote_identifier(name)),
						  0, NULL, NULL, NULL, SPI_OK_UTILITY);
		}
		tools_execute("DELETE FROM " TOOLS_SCHEMA ".deferred_constraint"
					  " WHERE relation::pg_catalog.oid OPERATOR(pg_catalog.=) $2"
					  " AND name OPERATOR(pg_catalog.=) $3",
					  3, types, values, NULL, SPI_OK_DELETE);
	}
	tools_restore_settings(level);
	return true;
}
