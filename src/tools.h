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

#include "executor/spi.h"

/* The extension's schema: tools.control fixes it and forbids relocation. */
#define TOOLS_SCHEMA "tools"

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
	char	   *condition;		/* NULL when none */
	int32		batchsize;		/* 0: one statement for everything */
	bool		trunc;

	/* resolved by tools_describe_job() */
	char	   *source_name;	/* schema-qualified, quoted */
	bool		source_foreign; /* the source is a foreign table */
	char	   *target_name;	/* schema-qualified, quoted */
	char	   *key_name;		/* quoted key column */
	Oid			key_type;		/* base type of the key: int2, int4 or int8 */
	bool		key_not_null;	/* the source declares the key NOT NULL */
	char	   *columns;		/* quoted target columns found in the source */
	int			ncolumns;
	AttrNumber *target_attnums; /* their numbers in the target */
	bool		same_types;		/* each has the same type and typmod in both */
	bool		bulk;			/* batches go through tools_bulk_copy() */
} ToolsJob;

/* bulk.c */
extern const char *tools_bulk_obstacle(const ToolsJob *job);
extern uint64 tools_bulk_copy(const ToolsJob *job, SPIPlanPtr plan,
							  Datum *args);

/* spi.c */
extern uint64 tools_execute(const char *sql, int nargs, Oid *types,
							 Datum *values, const char *nulls, int expected);
extern uint64 tools_execute_plan(SPIPlanPtr plan, Datum *values,
								 bool read_only, int expected);

/* query.c */
extern void tools_describe_job(ToolsJob *job);
extern char *tools_bound_sql(const ToolsJob *job, bool lower, bool last);
extern char *tools_select_sql(const ToolsJob *job, bool lower);
extern char *tools_copy_sql(const ToolsJob *job, bool lower);
extern char *tools_null_keys_sql(const ToolsJob *job);
extern bool tools_plan_reads_all(SPIPlanPtr plan);
extern Datum tools_key_datum(int64 value, Oid type);
extern int64 tools_key_int64(Datum value, Oid type);

#endif							/* TOOLS_H */
