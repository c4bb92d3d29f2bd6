/*-------------------------------------------------------------------------
 *
 * constraints.c
 *		Foreign keys of a run's targets, and the primary keys and unique
 *		constraints of the targets it empties, dropped before its jobs copy,
 *		and added back once they are done (tools.config.defer_constraints).
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
 * A target that the run empties (trunc) has its primary key and unique
 * constraints dropped and recorded the same way, after the foreign keys
 * that reference them: maintaining a key row by row costs more than the
 * rows' copy itself, and building its index from a sort once costs little.
 * A job's batches are exactly-once by their bookkeeping, not by the key;
 * a doubled row fails the job when the key comes back.
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
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
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

/* A foreign key k that joins two of them: the keys a repair may drop. */
#define BETWEEN_DEFERRING_TARGETS_SQL \
	" k.conrelid OPERATOR(pg_catalog.=) ANY (" DEFERRING_TARGETS_SQL ")" \
	" AND k.confrelid OPERATOR(pg_catalog.=) ANY (" DEFERRING_TARGETS_SQL ")"

/* Those of them that the run empties: every configuration also sets trunc. */
#define EMPTIED_TARGETS_SQL \
	"SELECT c.target::pg_catalog.oid" TOOLS_JOB_FROM \
	" WHERE j.run_id OPERATOR(pg_catalog.=) $1 GROUP BY c.target" \
	" HAVING pg_catalog.bool_and(c.trunc AND c.defer_constraints)"

/* What a constraint of type contype is called in messages. */
static const char *
constraint_kind(char contype)
{
	switch (contype)
	{
		case CONSTRAINT_PRIMARY:
			return "primary key";
		case CONSTRAINT_UNIQUE:
			return "unique constraint";
		default:
			return "foreign key";
	}
}

/*
 * Drop the foreign keys that belong to or reference a target of run run_id
 * that defers constraints (for a repair, not copy: that join two such
 * targets), recording how to add them back, in the caller's transaction.
 * For the run's copy, also the primary keys and unique constraints of the
 * targets it empties; and keys recorded by an earlier run on these tables
 * are the run's to add back now.  Only the owner of a
 * key's table may; job_id is the job whose configuration a refusal names.
 * The caller holds the run's row lock.
 */
static void
defer_constraints(int64 run_id, int64 job_id, bool copy)
{
	Oid			types[5] = {INT8OID, OIDOID, NAMEOID, TEXTOID, OIDOID};
	Datum		values[5];
	Oid			select_types[2] = {INT8OID, BOOLOID};
	Datum		select_values[2];
	SPITupleTable *keys;
	uint64		n;
	uint64		i;
	bool		isnull;

	values[0] = Int64GetDatum(run_id);
	select_values[0] = values[0];
	select_values[1] = BoolGetDatum(copy);
	if (tools_execute(DEFERRING_TARGETS_SQL " LIMIT 1", 1, types, values, NULL,
					  SPI_OK_SELECT) == 0)
		return;
	if (copy)
		tools_execute("UPDATE " TOOLS_SCHEMA ".deferred_constraint"
					  " SET run_id = $1 WHERE run_id OPERATOR(pg_catalog.<>) $1"
					  " AND (relation::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (" DEFERRING_TARGETS_SQL ")"
					  " OR referenced::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (" DEFERRING_TARGETS_SQL "))",
					  1, types, values, NULL, SPI_OK_UPDATE);

	/*
	 * The foreign keys first: a primary key or unique constraint that one
	 * references can be dropped only after it.  A key stays where it is the
	 * replica identity or the clustered index, or on a partition or a
	 * partitioned table.
	 */
	n = tools_execute("SELECT k.conrelid, k.conname,"
					  " CASE WHEN k.contype OPERATOR(pg_catalog.=) 'f' THEN k.confrelid"
					  " ELSE k.conrelid END,"
					  " pg_catalog.pg_has_role(t.relowner, 'USAGE'), k.contype"
					  " FROM pg_catalog.pg_constraint AS k"
					  " JOIN pg_catalog.pg_class AS t ON t.oid OPERATOR(pg_catalog.=) k.conrelid"
					  " WHERE k.conparentid OPERATOR(pg_catalog.=) 0"
					  " AND ((k.contype OPERATOR(pg_catalog.=) 'f' AND CASE WHEN $2"
					  " THEN k.conrelid OPERATOR(pg_catalog.=) ANY (" DEFERRING_TARGETS_SQL ")"
					  " OR k.confrelid OPERATOR(pg_catalog.=) ANY (" DEFERRING_TARGETS_SQL ")"
					  " ELSE" BETWEEN_DEFERRING_TARGETS_SQL " END)"
					  " OR ($2 AND k.contype OPERATOR(pg_catalog.=) ANY ('{p,u}'::pg_catalog.\"char\"[])"
					  " AND k.conrelid OPERATOR(pg_catalog.=) ANY (" EMPTIED_TARGETS_SQL ")"
					  " AND t.relkind OPERATOR(pg_catalog.=) " CppAsString2(RELKIND_RELATION)
					  " AND NOT t.relispartition"
					  " AND NOT EXISTS (SELECT FROM pg_catalog.pg_index AS i"
					  " WHERE i.indexrelid OPERATOR(pg_catalog.=) k.conindid"
					  " AND (i.indisreplident OR i.indisclustered))))"
					  " ORDER BY k.contype OPERATOR(pg_catalog.=) 'f' DESC, k.conrelid, k.conname",
					  2, select_types, select_values, NULL, SPI_OK_SELECT);
	keys = SPI_tuptable;
	for (i = 0; i < n; i++)
		if (!DatumGetBool(SPI_getbinval(keys->vals[i], keys->tupdesc, 4, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of table %s to defer its %s \"%s\"",
							tools_relation_sql(DatumGetObjectId(SPI_getbinval(keys->vals[i], keys->tupdesc, 1, &isnull))),
							constraint_kind(DatumGetChar(SPI_getbinval(keys->vals[i], keys->tupdesc, 5, &isnull))),
							SPI_getvalue(keys->vals[i], keys->tupdesc, 2)),
					 errdetail("The configuration of job %lld sets defer_constraints: the run drops the constraints of its targets and adds them back.",
							   (long long) job_id),
					 errhint("Run the job as the owner of the tables, or set defer_constraints to false in tools.config.")));

	for (i = 0; i < n; i++)
	{
		Oid			relation = DatumGetObjectId(SPI_getbinval(keys->vals[i], keys->tupdesc, 1, &isnull));
		char	   *name = SPI_getvalue(keys->vals[i], keys->tupdesc, 2);
		Oid			referenced = DatumGetObjectId(SPI_getbinval(keys->vals[i], keys->tupdesc, 3, &isnull));
		char		contype = DatumGetChar(SPI_getbinval(keys->vals[i], keys->tupdesc, 5, &isnull));
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
		if (!copy)
			ereport(NOTICE,
					(errmsg("foreign key \"%s\" of %s is dropped while tools.repair() writes into %s and %s",
							name, tools_relation_sql(relation), tools_relation_sql(relation),
							tools_relation_sql(referenced))));
		else if (contype == CONSTRAINT_FOREIGN)
			ereport(NOTICE,
					(errmsg("foreign key \"%s\" of %s is dropped until the run's jobs on %s and %s complete",
							name, tools_relation_sql(relation), tools_relation_sql(relation),
							tools_relation_sql(referenced))));
		else
			ereport(NOTICE,
					(errmsg("%s \"%s\" of %s is dropped until the run's jobs on it complete",
							constraint_kind(contype), name, tools_relation_sql(relation))));
	}
}

/*
 * At the first start of a job of its run (no job of the run has started):
 * its foreign keys, and the keys of the targets it empties, as above.
 */
void
tools_defer_constraints(const ToolsJob *job)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job->run_id)};

	if (tools_execute("SELECT FROM " TOOLS_SCHEMA ".job"
					  " WHERE run_id OPERATOR(pg_catalog.=) $1 AND ts IS NOT NULL LIMIT 1",
					  1, types, values, NULL, SPI_OK_SELECT) > 0)
		return;
	defer_constraints(job->run_id, job->job_id, true);
}

/*
 * When a foreign key between targets of run run_id refuses a row that
 * tools.repair() writes: the foreign keys between the targets whose
 * configurations defer constraints, as above, in the caller's transaction,
 * holding the run's row lock (a repair writes rows whose parents or
 * children another job repairs later, in either order, and one statement
 * of a repair may both delete a parent and insert a child).  A key from or
 * to another table stays, and acts as the schema says (ON DELETE CASCADE
 * into a table that no job repairs); so do the primary keys, by which the
 * repair finds rows.  Each key dropped comes back with
 * tools_restore_constraint() once the repair is done.
 */
void
tools_defer_foreign_keys(int64 run_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(run_id)};
	MemoryContext cxt = CurrentMemoryContext;
	char	   *busy = psprintf("cannot drop the foreign keys between the targets of run %lld now",
								(long long) run_id);
	int64		job_id;
	bool		isnull;

	if (tools_execute("SELECT j.job_id" TOOLS_JOB_FROM
					  " WHERE j.run_id OPERATOR(pg_catalog.=) $1 AND c.defer_constraints"
					  " ORDER BY j.job_id LIMIT 1",
					  1, types, values, NULL, SPI_OK_SELECT) == 0)
		return;
	job_id = DatumGetInt64(tools_result_value(1, &isnull));

	/* A job starting holds the lock: the repair would refuse it anyway. */
	PG_TRY();
	{
		tools_execute("SELECT FROM " TOOLS_SCHEMA ".run"
					  " WHERE run_id OPERATOR(pg_catalog.=) $1 FOR UPDATE NOWAIT",
					  1, types, values, NULL, SPI_OK_SELECT);
	}
	PG_CATCH();
	{
		tools_rethrow_told(cxt, ERRCODE_LOCK_NOT_AVAILABLE, busy,
						   "A foreign key between them refused a row that tools.repair() writes, and a job of the run that is starting holds the run.",
						   "Call tools.repair() again once that job has started: it repairs what is left.");
	}
	PG_END_TRY();
	defer_constraints(run_id, job_id, false);
}

/*
 * Refuse a recorded definition that does not add the recorded constraint
 * to the recorded table: the statement built from it must parse as one
 * ALTER TABLE of that table adding one foreign key, primary key or unique
 * constraint of that name, the kind the definition says.  Names resolve in
 * the caller's search_path, which is pg_catalog alone.
 */
static void
check_definition(Oid relation, const char *name, char contype, const char *sql)
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
	if (con == NULL ||
		con->contype != (contype == CONSTRAINT_PRIMARY ? CONSTR_PRIMARY :
						 contype == CONSTRAINT_UNIQUE ? CONSTR_UNIQUE :
						 CONSTR_FOREIGN) ||
		con->conname == NULL ||
		strcmp(con->conname, name) != 0 ||
		RangeVarGetRelid(stmt->relation, NoLock, true) != relation)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("definition of deferred %s \"%s\" of %s does not add that %s",
						constraint_kind(contype), name,
						tools_relation_sql(relation), constraint_kind(contype)),
				 errdetail("The statement built from it is: %s", sql),
				 errhint("Correct its row in tools.deferred_constraint, or delete the row.")));
}

/*
 * The kind of a recorded constraint, as pg_get_constraintdef() begins it.
 */
static char
recorded_kind(const char *definition)
{
	if (strncmp(definition, "PRIMARY KEY", 11) == 0)
		return CONSTRAINT_PRIMARY;
	if (strncmp(definition, "UNIQUE", 6) == 0)
		return CONSTRAINT_UNIQUE;
	return CONSTRAINT_FOREIGN;
}

/*
 * Add back, or validate, one constraint that the job's run deferred and
 * whose tables' jobs of the run have all completed; false when none is
 * left.  Primary keys and unique constraints come first, since a foreign
 * key needs the one it references (a foreign key waits while the key of
 * the table it references is recorded; the job that adds that key goes on
 * with it): each is added, building its index, and forgotten in one step.  A foreign key takes two steps: adding it NOT
 * VALID, then validating it and forgetting it.  The caller is connected to
 * SPI.
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
	char		contype;
	bool		exists;
	bool		validated;
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
					  " AND (d.definition OPERATOR(pg_catalog.!~~) 'FOREIGN KEY %'"
					  " OR NOT EXISTS (SELECT FROM " TOOLS_SCHEMA ".deferred_constraint AS r"
					  " WHERE r.relation OPERATOR(pg_catalog.=) d.referenced"
					  " AND r.definition OPERATOR(pg_catalog.!~~) 'FOREIGN KEY %'))"
					  " ORDER BY d.definition OPERATOR(pg_catalog.~~) 'FOREIGN KEY %',"
					  " d.relation, d.name LIMIT 1",
					  2, types, values, NULL, SPI_OK_SELECT) == 0)
		return false;
	relation = DatumGetObjectId(tools_result_value(1, &isnull));
	name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	definition = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	contype = recorded_kind(definition);
	relation_name = tools_relation_sql(relation);
	values[1] = ObjectIdGetDatum(relation);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(name));

	level = tools_catalog_search_path();
	exists = tools_execute("SELECT k.convalidated FROM pg_catalog.pg_constraint AS k"
						   " WHERE k.conrelid OPERATOR(pg_catalog.=) $2"
						   " AND k.conname OPERATOR(pg_catalog.=) $3",
						   3, types, values, NULL, SPI_OK_SELECT) > 0;
	validated = exists && DatumGetBool(tools_result_value(1, &isnull));
	if (!exists)
	{
		char	   *sql = psprintf("ALTER TABLE %s ADD CONSTRAINT %s %s%s",
								   relation_name, quote_identifier(name),
								   definition,
								   contype == CONSTRAINT_FOREIGN ? " NOT VALID" : "");

		check_definition(relation, name, contype, sql);
		ereport(NOTICE,
				(errmsg("adding %s \"%s\" of %s back",
						constraint_kind(contype), name, relation_name)));
		tools_execute(sql, 0, NULL, NULL, NULL, SPI_OK_UTILITY);
	}
	if (contype != CONSTRAINT_FOREIGN || exists)
	{
		if (contype == CONSTRAINT_FOREIGN && !validated)
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
