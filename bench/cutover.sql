-- bench/cutover.sql: the source's writes between the copy and the
-- cutover, 0.1% of its rows: updated and deleted, scattered over the
-- table, and inserted below and above the copied keys; or, with :undo,
-- the undoing of them, which bench/run runs after the round.
-- psql variables: :rows, :undo.
\if :undo
DELETE FROM public.r WHERE id < 1 OR id > :rows;
UPDATE public.r SET n = n - 1, t = left(t, -1) WHERE id % 2000 = 1;
INSERT INTO public.r SELECT * FROM public.r_deleted;
DROP TABLE public.r_deleted;
\else
UPDATE public.r SET n = n + 1, t = t || 'u' WHERE id % 2000 = 1;
CREATE TABLE public.r_deleted AS SELECT * FROM public.r WHERE id % 4000 = 2;
DELETE FROM public.r WHERE id % 4000 = 2;
INSERT INTO public.r SELECT -g, g, 'below' || g, now(), g FROM generate_series(1, :rows / 8000) g;
INSERT INTO public.r SELECT :rows + g, g, 'above' || g, now(), g FROM generate_series(1, :rows / 8000) g;
\endif
VACUUM public.r;
