/*-------------------------------------------------------------------------
 *
 * bulk.c
 *		Write a batch into the target the way COPY FROM does.
 *
 * The batch's SELECT runs through SPI with a DestReceiver of our own in
 * place of a result set (or, for a postgres_fdw source, COPY FROM's parser
 * hands over the rows of a remote COPY: remote.c).  Each row becomes a row
 * of the target's layout (columns matched by name, defaults and stored
 * generated columns computed, NOT NULL and CHECK constraints checked), waits
 * in a buffer of slots, and goes into the table with table_multi_insert()
 * and the call's BulkInsertState: one WAL record and one buffer lock per
 * page instead of per row.  Index entries are inserted after each flush,
 * unique keys checked there as an INSERT checks them.
 *
 * The batch stays in the job's transaction: what a failed batch wrote is
 * rolled back with it, as with INSERT.  Only targets whose INSERT would do
 * nothing more than that take this path: a plain table without insert
 * triggers (foreign keys and deferrable unique or exclusion constraints
 * check rows with triggers), rules, row level security or partition
 * constraint, whose copied columns have the source's types.  Any other
 * target gets the INSERT statement.
 *
 * It needs SPI's DestReceiver option, PostgreSQL 14 and later.
 *
 * IDENTIFICATION
 *		src/bulk.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"

#if PG_VERSION_NUM >= 140000
#include "executor/nodeModifyTable.h"
#endif
#if PG_VERSION_NUM >= 160000
#include "parser/parse_relation.h"
#endif

#include "tools.h"

/* tools.bulk_insert: off makes every batch an INSERT statement. */
static bool tools_bulk_insert = true;
int			tools_repair_chunk = 100000;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomBoolVariable("tools.bulk_insert",
							 "Writes batches into plain tables the way COPY FROM does.",
							 "Off, every batch is an INSERT ... SELECT statement.",
							 &tools_bulk_insert, true, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("tools.remote_copy",
							 "Reads postgres_fdw sources with COPY over a connection of its own.",
							 "Off, batches read postgres_fdw sources through the foreign table.",
							 &tools_remote_copy, true, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("tools.repair_chunk",
							"Rows that tools.repair() compares at a time on each side.",
							"Each chunk is one transaction; its keys and hashes are held in memory.",
							&tools_repair_chunk, 100000, 2, 10000000,
							PGC_USERSET, 0, NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("tools");
#endif
	tools_init_guard();
}

/* Flush the buffered rows at this many, or at this many bytes, as COPY does. */
#define BULK_MAX_ROWS	1000
#define BULK_MAX_BYTES	65535

/*
 * Why INSERT has to write into this target, or NULL when a batch may go
 * through table_multi_insert().
 */
const char *
tools_bulk_obstacle(const ToolsJob *job)
{
#if PG_VERSION_NUM < 140000
	return "PostgreSQL 14 or later is needed";
#else
	Relation	rel;
	const char *why = NULL;
	TriggerDesc *trig;

	if (!tools_bulk_insert)
		return "tools.bulk_insert is off";
	if (!job->same_types)
		return "a copied column has another type in the source";

	rel = table_open(job->target, AccessShareLock);
	trig = rel->trigdesc;
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		why = "the target is not a plain table";
	else if (rel->rd_rel->relispartition)
		why = "the target is a partition";
	else if (trig != NULL &&
			 (trig->trig_insert_before_row || trig->trig_insert_after_row ||
			  trig->trig_insert_instead_row ||
			  trig->trig_insert_before_statement ||
			  trig->trig_insert_after_statement ||
			  trig->trig_insert_new_table))
		why = "the target has insert triggers (foreign keys and deferrable constraints have them)";
	else
		why = tools_insert_obstacle(job);

	table_close(rel, AccessShareLock);
	return why;
#endif
}

static bool
stmt_routed(PlannedStmt *stmt, void *arg)
{
	return stmt->commandType != CMD_INSERT || !IsA(stmt->planTree, ModifyTable);
}

/*
 * Whether the planner makes the job's INSERT something else than
 * PostgreSQL's own insert into the target: another extension (Citus for
 * its distributed, reference and local tables, for one) plans it with
 * scans of its own and writes the rows where it reads them, not into the
 * table that this server holds.  The caller is connected to SPI.
 */
static bool
insert_routed(const ToolsJob *job)
{
	/* Without a planner hook, the planner is PostgreSQL's own. */
	if (planner_hook == NULL)
		return false;
	return tools_sql_plan_any(tools_copy_sql(job, false), NUM_PARAMS(job),
							  tools_param_types(job), stmt_routed, NULL);
}

/*
 * What INSERT applies that writing the way COPY FROM does would not: rules,
 * row level security, and another extension's planning of the insert.
 * NULL when the target has none of them.  The caller is connected to SPI.
 */
const char *
tools_insert_obstacle(const ToolsJob *job)
{
	Relation	rel = table_open(job->target, AccessShareLock);
	bool		rules = rel->rd_rules != NULL;

	table_close(rel, AccessShareLock);
	if (rules)
		return "the target has rules";
	if (check_enable_rls(job->target, InvalidOid, true) == RLS_ENABLED)
		return "row level security applies to the target";
	if (insert_routed(job))
		return "another extension plans the target's inserts";
	return NULL;
}

#if PG_VERSION_NUM >= 140000

/* The receiver of a batch's rows, and the target it writes into. */
struct BulkDest
{
	DestReceiver pub;
	const ToolsJob *job;
	MemoryContext cxt;			/* where slots and their rows live */
	Relation	rel;
	ResultRelInfo *rri;
	EState	   *estate;
	CommandId	cid;
	BulkInsertState bistate;

	/* target columns not copied that have a default, and its expression */
	int			ndefaults;
	AttrNumber *default_attnums;
	ExprState **default_exprs;

	TupleTableSlot *slots[BULK_MAX_ROWS];
	int			nused;
	Size		bytes;
	uint64		rows;
};

/*
 * The target as the one entry of a range table, as INSERT has it: the
 * insert right on the copied columns, checked here, which error reports and
 * permission checks of the executor use.  perminfos is NIL before
 * PostgreSQL 16.
 */
void
tools_target_rtable(const ToolsJob *job, List **rtable, List **perminfos)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	Bitmapset  *cols = NULL;
	int			i;
#if PG_VERSION_NUM >= 160000
	RTEPermissionInfo *perm;
#endif

	for (i = 0; i < job->ncolumns; i++)
		cols = bms_add_member(cols, job->target_attnums[i] -
							  FirstLowInvalidHeapAttributeNumber);

	rte->rtekind = RTE_RELATION;
	rte->relid = job->target;
	rte->relkind = get_rel_relkind(job->target);
	rte->rellockmode = RowExclusiveLock;
	*rtable = list_make1(rte);
	*perminfos = NIL;
#if PG_VERSION_NUM >= 160000
	perm = addRTEPermissionInfo(perminfos, rte);
	perm->requiredPerms = ACL_INSERT;
	perm->insertedCols = cols;
	ExecCheckPermissions(*rtable, *perminfos, true);
#else
	rte->requiredPerms = ACL_INSERT;
	rte->insertedCols = cols;
	ExecCheckRTPerms(*rtable, true);
#endif
}

/* An executor state with the target as its one result relation. */
static void
init_target(BulkDest *dest)
{
	EState	   *estate = CreateExecutorState();
	List	   *rtable;
	List	   *perminfos;

	tools_target_rtable(dest->job, &rtable, &perminfos);
#if PG_VERSION_NUM >= 180000
	ExecInitRangeTable(estate, rtable, perminfos, bms_make_singleton(1));
#elif PG_VERSION_NUM >= 160000
	ExecInitRangeTable(estate, rtable, perminfos);
#else
	ExecInitRangeTable(estate, rtable);
#endif

	dest->estate = estate;
	dest->rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(estate, dest->rri, 1);
	dest->rel = dest->rri->ri_RelationDesc;
	ExecOpenIndices(dest->rri, false);
	dest->cid = GetCurrentCommandId(true);
	dest->bistate = dest->job->bistate;
}

/* Plan the defaults of the target columns the source does not fill. */
static void
init_defaults(BulkDest *dest)
{
	TupleDesc	desc = RelationGetDescr(dest->rel);
	bool	   *copied = palloc0(sizeof(bool) * (desc->natts + 1));
	int			i;

	for (i = 0; i < dest->job->ncolumns; i++)
		copied[dest->job->target_attnums[i]] = true;

	dest->default_attnums = palloc(sizeof(AttrNumber) * desc->natts);
	dest->default_exprs = palloc(sizeof(ExprState *) * desc->natts);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *expr;

		if (att->attisdropped || att->attgenerated != '\0' ||
			copied[att->attnum])
			continue;
		expr = build_column_default(dest->rel, att->attnum);
		if (expr == NULL)
			continue;
		dest->default_attnums[dest->ndefaults] = att->attnum;
		dest->default_exprs[dest->ndefaults] =
			ExecPrepareExpr((Expr *) expression_planner((Expr *) expr),
							dest->estate);
		dest->ndefaults++;
	}
}

/*
 * Write the buffered rows: heap first, then their index entries, which
 * check unique keys against everything committed and written so far.
 */
static void
flush_rows(BulkDest *dest)
{
	MemoryContext oldcxt;
	int			i;

	if (dest->nused == 0)
		return;

	oldcxt = MemoryContextSwitchTo(GetPerTupleMemoryContext(dest->estate));
	table_multi_insert(dest->rel, dest->slots, dest->nused, dest->cid, 0,
					   dest->bistate);
	MemoryContextSwitchTo(oldcxt);

	for (i = 0; i < dest->nused; i++)
	{
		if (dest->rri->ri_NumIndices > 0)
		{
			List	   *recheck;

#if PG_VERSION_NUM >= 160000
			recheck = ExecInsertIndexTuples(dest->rri, dest->slots[i],
											dest->estate, false, false, NULL,
											NIL, false);
#else
			recheck = ExecInsertIndexTuples(dest->rri, dest->slots[i],
											dest->estate, false, false, NULL,
											NIL);
#endif
			/* Deferrable constraints have triggers: never here. */
			Assert(recheck == NIL);
			list_free(recheck);
		}
		ExecClearTuple(dest->slots[i]);
		ResetPerTupleExprContext(dest->estate);
	}
	dest->rows += dest->nused;
	dest->nused = 0;
	dest->bytes = 0;
}

static void
bulk_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	BulkDest   *dest = (BulkDest *) self;

	if (typeinfo->natts != dest->job->ncolumns)
		elog(ERROR, "batch query returned %d columns, expected %d",
			 typeinfo->natts, dest->job->ncolumns);
}

/* The next free slot of the buffer, empty. */
TupleTableSlot *
tools_bulk_slot(BulkDest *dest)
{
	if (dest->slots[dest->nused] == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(dest->cxt);

		dest->slots[dest->nused] = table_slot_create(dest->rel, NULL);
		MemoryContextSwitchTo(oldcxt);
	}
	ExecClearTuple(dest->slots[dest->nused]);
	return dest->slots[dest->nused];
}

/* Where the values of a row may be computed, reset after each row. */
ExprContext *
tools_bulk_econtext(BulkDest *dest)
{
	return GetPerTupleExprContext(dest->estate);
}

/*
 * Check the row stored in the slot that tools_bulk_slot() gave, computing
 * its stored generated columns, and buffer it.
 */
void
tools_bulk_store(BulkDest *dest, TupleTableSlot *slot)
{
	EState	   *estate = dest->estate;

	if (dest->rel->rd_att->constr != NULL)
	{
		if (dest->rel->rd_att->constr->has_generated_stored)
			ExecComputeStoredGenerated(dest->rri, estate, slot, CMD_INSERT);
		ExecConstraints(dest->rri, slot, estate);
	}

	/* The row must outlive the source's buffers and the per-row memory. */
	ExecMaterializeSlot(slot);
	dest->bytes += ExecFetchSlotHeapTuple(slot, false, NULL)->t_len;
	ResetPerTupleExprContext(estate);

	if (++dest->nused == BULK_MAX_ROWS || dest->bytes >= BULK_MAX_BYTES)
		flush_rows(dest);
}

/* Turn a source row into a target row with its defaults, and store it. */
static bool
bulk_receive(TupleTableSlot *src, DestReceiver *self)
{
	BulkDest   *dest = (BulkDest *) self;
	const ToolsJob *job = dest->job;
	ExprContext *econtext = tools_bulk_econtext(dest);
	TupleTableSlot *slot = tools_bulk_slot(dest);
	MemoryContext oldcxt;
	int			natts = RelationGetDescr(dest->rel)->natts;
	int			i;

	slot_getallattrs(src);
	memset(slot->tts_isnull, true, sizeof(bool) * natts);
	for (i = 0; i < job->ncolumns; i++)
	{
		AttrNumber	a = job->target_attnums[i] - 1;

		slot->tts_values[a] = src->tts_values[i];
		slot->tts_isnull[a] = src->tts_isnull[i];
	}

	oldcxt = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
	for (i = 0; i < dest->ndefaults; i++)
	{
		AttrNumber	a = dest->default_attnums[i] - 1;

		slot->tts_values[a] = ExecEvalExpr(dest->default_exprs[i], econtext,
										   &slot->tts_isnull[a]);
	}
	MemoryContextSwitchTo(oldcxt);
	ExecStoreVirtualTuple(slot);
	tools_bulk_store(dest, slot);
	return true;
}

static void
bulk_shutdown(DestReceiver *self)
{
	flush_rows((BulkDest *) self);
}

static void
bulk_destroy(DestReceiver *self)
{
}

/*
 * Set up writing a batch into the job's target, in its transaction; with
 * defaults, compute those of the target columns not copied (the caller
 * computes them otherwise).
 */
BulkDest *
tools_bulk_begin(const ToolsJob *job, bool defaults)
{
	BulkDest   *dest = palloc0(sizeof(BulkDest));

	dest->pub.receiveSlot = bulk_receive;
	dest->pub.rStartup = bulk_startup;
	dest->pub.rShutdown = bulk_shutdown;
	dest->pub.rDestroy = bulk_destroy;
	dest->pub.mydest = DestNone;
	dest->job = job;
	dest->cxt = CurrentMemoryContext;

	LockRelationOid(job->target, RowExclusiveLock);
	init_target(dest);
	if (defaults)
		init_defaults(dest);
	return dest;
}

/*
 * Write what is buffered and end the batch.  The job's bulk insert state
 * lets go of its page but keeps its ring of buffers for the next batch:
 * a ring of new buffers for each batch would cost this process a page fault
 * for every page of shared memory it has not touched yet.  Returns the
 * rows written.
 */
uint64
tools_bulk_end(BulkDest *dest)
{
	int			i;

	flush_rows(dest);
	for (i = 0; i < BULK_MAX_ROWS && dest->slots[i] != NULL; i++)
		ExecDropSingleTupleTableSlot(dest->slots[i]);
	ReleaseBulkInsertStatePin(dest->bistate);
	table_finish_bulk_insert(dest->rel, 0);
	ExecCloseResultRelations(dest->estate);
	ExecCloseRangeTableRelations(dest->estate);
	FreeExecutorState(dest->estate);
	return dest->rows;
}

/*
 * Copy one key range: run the batch's SELECT (plan, with the key range in
 * params) into the target.  Returns the rows written.
 */
uint64
tools_bulk_copy(const ToolsJob *job, SPIPlanPtr plan, ParamListInfo params)
{
	BulkDest   *dest = tools_bulk_begin(job, true);
	SPIExecuteOptions options;
	int			rc;

	memset(&options, 0, sizeof(options));
	options.params = params;
	options.read_only = false;
	options.dest = (DestReceiver *) dest;
	rc = SPI_execute_plan_extended(plan, &options);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan_extended failed: %s",
			 SPI_result_code_string(rc));
	return tools_bulk_end(dest);
}

#else							/* PG_VERSION_NUM < 140000 */

/* Never called: tools_bulk_obstacle() keeps every job off the bulk path. */
uint64
tools_bulk_copy(const ToolsJob *job, SPIPlanPtr plan, ParamListInfo params)
{
	elog(ERROR, "the bulk path needs PostgreSQL 14 or later");
	return 0;
}

#endif							/* PG_VERSION_NUM >= 140000 */
