# Makefile for the tools extension (PGXS)

EXTENSION = tools
MODULE_big = tools
OBJS = src/plan.o src/copy.o src/bulk.o src/constraints.o src/indexes.o src/key.o src/query.o \
	src/verify.o src/remote.o src/sequences.o src/spi.o src/worker.o
DATA = $(wildcard sql/tools--*.sql)
PGFILEDESC = "tools - config-table-driven data migration"

# remote.c reads postgres_fdw sources with libpq
PG_CPPFLAGS = -I$(libpq_srcdir)
SHLIB_LINK_INTERNAL = $(libpq)

# pg_regress: sql/NAME.sql against expected/NAME.out, in this order
REGRESS = setup spec plan copy keys keyless parts bulk resume truncate defer constraints sequences report progress verify workers search_path timeout privileges errors repair fdw remote upgrade

# isolation specs: test/specs/*.spec against test/expected/*.out
ISOLATION = $(basename $(notdir $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=tools

# TAP tests: test/t/*.pl
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): src/tools.h

# make bench: tools against plain PostgreSQL and its peers on throwaway
# clusters (bench/run, then bench/schema for real target schemas, then
# bench/mysql for MariaDB sources against pgloader, then bench/scale for
# 2M against 20M rows; BENCH_ROWS, BENCH_SCALE, BENCH_SIZES and BENCH_REPS
# change their sizes)
.PHONY: bench
bench:
	bash bench/run
	bash bench/schema
	bash bench/mysql
	bash bench/scale
