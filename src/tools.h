/*-------------------------------------------------------------------------
 *
 * tools.h
 *		Declarations shared by the units of the tools extension.
 *
 * A job is described once per call of tools.start() from its tools.job and
 * tools.config rows and the catalogs (query.c); the copy loop (copy.c) runs
 * the statements built from that description.
 *
 * IDENTIFICATION
 *		src/tools.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TOOLS_H
#define TOOLS_H

#include "postgres.h"

#include "access/stratnum.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/params.h"
#include "nodes/plannodes.h"
#include "storage/lock.h"
#include "utils/relcache.h"
#include "utils/tuplestore.h"

/* The extension's schema: tools.control fixes it and forbids relocation. */
#define TOOLS_SCHEMA "tools"

/*
 * Advisory locks, told apart from others by field4 of their tag (objsubid
 * in pg_locks) and keyed by a 64-bit id in field2 and field3 (classid and
 * objid).  A call of tools.start() holds its job's lock as a session lock
 * (the SQL function tools.active() knows its number); a worker holds its
 * run's lock in share mode for its life; tools.cancel() holds the run's
 * cancel lock until the run's workers are gone; a completed job holds its
 * target's lock (keyed by the table's oid) while it looks at its target's
 * deferred indexes and builds them again; a completed job holds its run's
 * constraint lock while it looks at the run's deferred foreign keys; a
 * tools.repair() call holds its run's repair lock for its life, in share
 * mode until a foreign key refuses a row of it, then alone (it lets go, and
 * waits for the other calls to end, before it may drop keys), and the last
 * to end takes it alone to add back the foreign keys; it also holds its
 * run's repairing lock in share mode from its start to its end, by which
 * other processes know its job locks for a repair's of that run, also while
 * it changes its hold of the repair lock.
 */
#define TOOLS_JOB_LOCK_SPACE	0x7430
#define TOOLS_RUN_LOCK_SPACE	0x7431
#define TOOLS_CANCEL_LOCK_SPACE 0x7432
#define TOOLS_TARGET_LOCK_SPACE 0x7433
#define TOOLS_CONSTRAINT_LOCK_SPACE 0x7434
#define TOOLS_REPAIR_LOCK_SPACE 0x7435
#define TOOLS_REPAIRING_LOCK_SPACE 0x7436

/*
 * The advisory locks of this database that other processes hold, as a
 * subquery with columns space (field4), id (the 64-bit key) and pid.
 */
#define TOOLS_HELD_LOCKS_SQL \
	"(SELECT l.objsubid AS space," \
	" (l.classid::pg_catalog.int8 OPERATOR(pg_catalog.<<) 32)" \
	" OPERATOR(pg_catalog.|) l.objid::pg_catalog.int8 AS id, l.pid" \
	" FROM pg_catalog.pg_locks AS l" \
	" WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'" \
	" AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database AS d" \
	" WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())" \
	" AND l.granted AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid())"

/*
 * Of the locks held (TOOLS_HELD_LOCKS_SQL as "held"), whether process pid
 * holds run run's repairing lock: it is a tools.repair() of that run.
 * pid, run and space (TOOLS_REPAIRING_LOCK_SPACE) are SQL expressions.
 */
#define TOOLS_REPAIRING_SQL(pid, run, space) \
	" EXISTS (SELECT FROM held AS r WHERE r.space OPERATOR(pg_catalog.=) " space \
	" AND r.id OPERATOR(pg_catalog.=) " run " AND r.pid OPERATOR(pg_catalog.=) " pid ")"

#define TOOLS_SET_LOCKTAG(tag, id, space) \
	SET_LOCKTAG_ADVISORY((tag), MyDatabaseId, (uint32) ((uint64) (id) >> 32), \
						 (uint32) (id), (space))

/* A column of a job's key. */
typedef struct ToolsKeyColumn
{
	char	   *name;			/* quoted */
	char	   *target_expr;	/* the target's column as the key's type and
								 * collation, for the target's side */
	char	   *attname;		/* as the catalogs spell it */
	Oid			type;			/* base type */
	Oid			collation;		/* the source column's */
	int16		typlen;
	bool		typbyval;
	bool		not_null;		/* the source declares it NOT NULL */
	char	   *ops[BTMaxStrategyNumber + 1];	/* "OPERATOR(schema.op)" of
												 * its btree ordering, by
												 * strategy number */
	Oid			input;			/* type input and output functions, for */
	Oid			ioparam;		/* its text form */
	Oid			output;
} ToolsKeyColumn;

/*
 * The parameters of a job's statements: the lower end of a batch (its key
 * columns, excluded), the upper end (included), and the lower and upper
 * ends of the job's part of the key range (its first column; the lower
 * included, the upper excluded).  A job without a key has none.
 */
#define PARAM_LAST(job, i)		(i)
#define PARAM_UPPER(job, i)		((job)->nkeys + (i))
#define PARAM_PART_LOWER(job)	(2 * (job)->nkeys)
#define PARAM_PART_UPPER(job)	(2 * (job)->nkeys + 1)
#define NUM_PARAMS(job)			((job)->nkeys > 0 ? 2 * (job)->nkeys + 2 : 0)

/* What a job copies, as configured and as resolved in the catalogs. */
typedef struct ToolsJob
{
	int64		job_id;
	int64		run_id;
	int64		config_id;

	/* from tools.config */
	Oid			source;
	Oid			target;
	char	   *pkey;			/* as configured */
	char	   *planned_pkey;	/* as configured when the run was planned: the
								 * key of its position and part; NULL if it
								 * has neither, or is not known */
	char	   *condition;		/* NULL when none */
	int32		batchsize;		/* 0: one statement for everything */
	bool		trunc;
	bool		defer_indexes;
	bool		defer_constraints;	/* drop the foreign keys of the run's
									 * targets until its jobs complete */
	bool		sequences;		/* set the target's sequences past the copy */

	/* resolved by tools_describe_job() */
	char	   *source_name;	/* schema-qualified, quoted */
	bool		source_foreign; /* the source is a foreign table */
	char	   *source_fdw;		/* the name of its wrapper's handler function */
	char	   *target_name;	/* schema-qualified, quoted */
	int			nkeys;			/* key columns; 0: no key, one batch */
	ToolsKeyColumn *keys;
	bool		integer_key;	/* one integer column: tools.job.lastseq too */
	bool		row_compare;	/* compare keys as rows: (a, b) > ($1, $2) */
	char	   *part_lower;		/* the job's part of the key range, as text */
	char	   *part_upper;		/* of its first column; NULL: open */
	char	   *columns;		/* quoted target columns found in the source */
	int			ncolumns;
	AttrNumber *target_attnums; /* their numbers in the target */
	bool		same_types;		/* each has the same type and typmod in both */
	char	   *shape;			/* each copied column's name, number and
								 * types in both, and the key's columns and
								 * types: what the batches rely on */

	/* chosen by tools.start() for its call */
	bool		bulk;			/* batches write by bulk insertion */
	struct ToolsRemote *remote; /* batches may go through tools_remote_batch() */
	struct BulkInsertStateData *bistate;	/* of the bulk path, for the call */
} ToolsJob;

/*
 * The columns that describe a job, as tools_job_from_row() reads them, and
 * the join they come from.
 */
#define TOOLS_JOB_COLUMNS \
	"j.job_id, j.run_id, c.config_id, c.source, c.target, c.pkey," \
	" c.condition, c.batchsize, c.trunc, j.lower, j.upper, c.defer_indexes," \
	" CASE WHEN j.lastkey IS NOT NULL OR j.lower IS NOT NULL" \
	" OR j.upper IS NOT NULL THEN j.pkey END, c.sequences, c.defer_constraints"
#define TOOLS_JOB_NCOLUMNS 15
/*
 * The order in which a run's jobs are returned by tools.run() and taken by
 * workers, over job j and its configuration c: by priority (NULL last),
 * then by configuration and part, which is the order of the job ids.
 */
#define TOOLS_JOB_ORDER "c.priority NULLS LAST, j.config_id, j.job_id"

#define TOOLS_JOB_FROM \
	" FROM " TOOLS_SCHEMA ".job AS j JOIN " TOOLS_SCHEMA ".config AS c" \
	" ON c.config_id OPERATOR(pg_catalog.=) j.config_id"

/*
 * Where a source stands, asked of its server: the oldest transaction
 * running there and the next to start (txid_snapshot_xmin() and xmax(),
 * with their epoch), the server's system identifier, whether relation $1
 * keeps an xmin on its rows (a table, a partitioned table, a materialized
 * view), and which relation $1 is there: its database's OID times 2^32
 * plus its own OID.
 */
typedef struct ToolsSnapshot
{
	int64		xmin;
	int64		xmax;
	int64		system;
	int64		relation;
} ToolsSnapshot;

#define TOOLS_SNAPSHOT_SQL \
	"SELECT pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot())," \
	" pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot())," \
	" (SELECT s.system_identifier FROM pg_catalog.pg_control_system() AS s)," \
	" (SELECT c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,m}'::pg_catalog.\"char\"[])" \
	" FROM pg_catalog.pg_class AS c" \
	" WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1))," \
	" (SELECT (d.oid::pg_catalog.int8 OPERATOR(pg_catalog.<<) 32)" \
	" OPERATOR(pg_catalog.|) pg_catalog.to_regclass($1)::pg_catalog.oid::pg_catalog.int8" \
	" FROM pg_catalog.pg_database AS d" \
	" WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"

/*
 * Whether the keys of a table are best counted range by range through an
 * index (tools_range_counts_sql()): the table named $1 has a valid btree
 * index, not partial, whose first column is the one named $2 (as an SQL
 * identifier), and its visibility map, as its statistics last saw it,
 * covers at least half its pages, so that the index alone answers for
 * most of its rows.  Asked here, or on a source's server.
 */
#define TOOLS_KEY_INDEXED_SQL \
	"SELECT EXISTS (SELECT FROM pg_catalog.pg_index AS i" \
	" JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) i.indrelid" \
	" JOIN pg_catalog.pg_class AS ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid" \
	" JOIN pg_catalog.pg_am AS am ON am.oid OPERATOR(pg_catalog.=) ic.relam" \
	" JOIN pg_catalog.pg_attribute AS a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid" \
	" AND a.attnum OPERATOR(pg_catalog.=) i.indkey[0]" \
	" WHERE i.indrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)" \
	" AND pg_catalog.quote_ident(a.attname) OPERATOR(pg_catalog.=) $2" \
	" AND i.indisvalid AND i.indpred IS NULL" \
	" AND am.amname OPERATOR(pg_catalog.=) 'btree'" \
	" AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,m}'::pg_catalog.\"char\"[])" \
	" AND c.relpages OPERATOR(pg_catalog.>) 0" \
	" AND (c.relallvisible OPERATOR(pg_catalog.*) 2) OPERATOR(pg_catalog.>=) c.relpages)"

/* bulk.c */
typedef struct BulkDest BulkDest;
extern const char *tools_bulk_obstacle(const ToolsJob *job);
extern BulkDest *tools_bulk_begin(const ToolsJob *job, bool defaults);
extern TupleTableSlot *tools_bulk_slot(BulkDest *dest);
extern ExprContext *tools_bulk_econtext(BulkDest *dest);
extern void tools_bulk_store(BulkDest *dest, TupleTableSlot *slot);
extern uint64 tools_bulk_end(BulkDest *dest);
extern uint64 tools_bulk_copy(const ToolsJob *job, SPIPlanPtr plan,
							  ParamListInfo params);
extern void tools_target_rtable(const ToolsJob *job, List **rtable,
								List **perminfos);
extern const char *tools_insert_obstacle(const ToolsJob *job);

/* constraints.c */
extern void tools_defer_constraints(const ToolsJob *job);
extern void tools_defer_foreign_keys(int64 run_id);
extern bool tools_restore_constraint(const ToolsJob *job);

/* indexes.c */
extern int	tools_catalog_search_path(void);
extern void tools_defer_indexes(const ToolsJob *job);
extern bool tools_may_read(const char *table);
extern bool tools_restore_due(const ToolsJob *job);
extern bool tools_restore_index(const ToolsJob *job);

/* key.c */
extern void tools_describe_key(ToolsJob *job);
extern char *tools_key_text(const ToolsKeyColumn *col, Datum value);
extern Datum tools_key_value(const ToolsKeyColumn *col, const char *text);
extern char *tools_key_string(const ToolsJob *job, const Datum *values);
extern Datum tools_key_array(const ToolsJob *job, const Datum *values);
extern void tools_key_from_array(const ToolsJob *job, Datum array,
								 Datum *values);
extern int64 tools_key_int64(const ToolsJob *job, const Datum *values);
extern Datum tools_int64_key(const ToolsJob *job, int64 value);
extern bool tools_use_windows(const ToolsJob *job);
extern int64 tools_window_width(double span, double rows, int per_window,
								int64 width);
extern void tools_window_span(const ToolsJob *job, int per_window, int64 *lo,
							  int64 *hi, int64 *width);
extern bool tools_window_end(int64 lo, bool has_last, int64 last, int64 width,
							 int64 *end);
extern int	tools_fix_style(void);
extern void tools_restore_settings(int level);

/* verify.c */
extern void tools_estimate_run(int64 run_id, bool exact, bool tolerant,
							   Tuplestorestate *store, TupleDesc desc);

/* worker.c */
extern PGDLLEXPORT void tools_worker_main(Datum arg);
extern int	tools_lock_holder(int64 id, int space);

/* remote.c */
extern bool tools_remote_copy;
extern int	tools_repair_chunk;
extern void tools_remote_describe(ToolsJob *job);
extern bool tools_remote_batch(ToolsJob *job, SPIPlanPtr plan,
							   ParamListInfo params, uint64 *rows);
extern bool tools_remote_prefetch(ToolsJob *job, SPIPlanPtr plan,
								  ParamListInfo params);
extern bool tools_remote_prefetched(ToolsJob *job, Datum *upper);
extern bool tools_remote_hash_send(ToolsJob *job, SPIPlanPtr plan,
								   ParamListInfo params, bool keyed,
								   const char *fast_hash,
								   const char *portable_hash,
								   const char **row_hash, MemoryContext cxt);
extern void tools_remote_hash_result(ToolsJob *job, char **values);
extern bool tools_remote_send(ToolsJob *job, SPIPlanPtr plan,
							  ParamListInfo params, bool second,
							  MemoryContext cxt);
typedef char *(*ToolsRangesSql) (const char *relation, const char *key);
extern bool tools_remote_send_ranges(ToolsJob *job, ToolsRangesSql ranges_sql,
									 const char *firsts, const char *lasts,
									 bool second, MemoryContext cxt);
extern bool tools_remote_key_indexed(ToolsJob *job, MemoryContext cxt);
extern int64 tools_remote_int8s(ToolsJob *job, bool second, int64 **firsts,
								int64 **seconds, MemoryContext cxt);
extern void tools_remote_consume(ToolsJob *job);
extern int64 tools_remote_keyed_result(ToolsJob *job, Datum *keys, int64 *hashes,
									   int64 max);
extern void tools_remote_close(ToolsJob *job);
extern bool tools_remote_reads_target(ToolsJob *job);
extern bool tools_fdw_points_here(const ToolsJob *job);
extern bool tools_remote_snapshot(ToolsJob *job, ToolsSnapshot *snap,
								  MemoryContext keep);
extern void tools_remote_send_changed(ToolsJob *job, const char *xid,
									  const Datum *after, int64 limit,
									  MemoryContext cxt);
extern int64 tools_remote_changed_keys(ToolsJob *job, int64 limit,
									   Datum *keys);

/* sequences.c */
extern bool tools_has_sequences(const ToolsJob *job);
extern void tools_set_sequences(const ToolsJob *job);

/* spi.c */
extern uint64 tools_execute(const char *sql, int nargs, Oid *types,
							 Datum *values, const char *nulls, int expected);
extern uint64 tools_execute_plan(SPIPlanPtr plan, ParamListInfo params,
								 bool read_only, int expected);
extern Datum tools_result_value(int col, bool *isnull);
extern Tuplestorestate *tools_materialize(FunctionCallInfo fcinfo,
										  TupleDesc *desc);
extern bool tools_called_nonatomic(FunctionCallInfo fcinfo);
extern void tools_connect_nonatomic(void);
extern void tools_commit(void);
extern void tools_commit_and_finish(void);
extern void tools_rethrow_told(MemoryContext cxt, int sqlerrcode,
							   const char *message, const char *detail,
							   const char *hint);
extern void tools_lock_job(int64 job_id, LOCKTAG *tag);
extern void tools_check_target_writer(const ToolsJob *job, int64 except_run,
									  bool repairing, const char *why,
									  const char *call);
extern int64 tools_connect_run(FunctionCallInfo fcinfo, int argno);

/* query.c */
extern void tools_job_from_row(ToolsJob *job, HeapTuple row, TupleDesc desc,
							   MemoryContext cxt);
extern char *tools_relation_sql(Oid relid);
extern void tools_describe_relations(ToolsJob *job);
extern void tools_check_key_kept(const ToolsJob *job, const char *pkey,
								 const char *where);
extern void tools_describe_job(ToolsJob *job);
extern Oid *tools_param_types(const ToolsJob *job);
extern ParamListInfo tools_params(const ToolsJob *job, Datum part_lower,
								  Datum part_upper);
extern char *tools_range_sql(const ToolsJob *job, const char *list,
							 bool lower, bool upper, bool target);
extern char *tools_repair_sql(const ToolsJob *job, bool lower, bool upper,
							  const char *source_list, const char *keys,
							  bool deltas);
extern char *tools_changed_keys_sql(const ToolsJob *job, const char *relation,
									const char *key, bool after, int64 limit);
extern char *tools_range_keys_sql(const char *relation, const char *key);
extern char *tools_range_counts_sql(const char *relation, const char *key);
extern bool tools_source_snapshot(ToolsJob *job, ToolsSnapshot *snap,
								  MemoryContext keep);
extern char *tools_bound_sql(const ToolsJob *job, bool lower, bool last);
extern char *tools_span_sql(const ToolsJob *job, bool lower);
extern bool tools_condition_has_modulo(const ToolsJob *job);
extern char *tools_select_sql(const ToolsJob *job, bool lower);
extern char *tools_copy_sql(const ToolsJob *job, bool lower);
extern char *tools_null_keys_sql(const ToolsJob *job);
extern char *tools_key_list(const ToolsJob *job, const char *suffix);
extern char *tools_key_not_null(const ToolsJob *job);
extern bool tools_plan_any(SPIPlanPtr plan,
						   bool (*test) (PlannedStmt *stmt, void *arg),
						   void *arg);
extern bool tools_sql_plan_any(const char *sql, int nargs, Oid *types,
							   bool (*test) (PlannedStmt *stmt, void *arg),
							   void *arg);
extern bool tools_plan_reads_all(SPIPlanPtr plan);
extern void tools_check_source(const ToolsJob *job);
extern void tools_init_guard(void);
extern void tools_guard_source(const ToolsJob *job);
extern List *tools_parse(const char *sql);

#endif							/* TOOLS_H */
