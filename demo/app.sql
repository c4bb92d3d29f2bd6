-- demo/app.sql: the new database (the target side), reading the legacy
-- database through postgres_fdw, and the tools configuration.
CREATE EXTENSION postgres_fdw;
CREATE SERVER legacy FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host :'host', port :'port', dbname 'legacy', fetch_size '10000');
CREATE USER MAPPING FOR CURRENT_USER SERVER legacy;
CREATE SCHEMA legacy;
IMPORT FOREIGN SCHEMA shop FROM SERVER legacy INTO legacy;
-- Statistics of the foreign tables (sampled on the legacy server): tools.run()
-- cuts a table into parts from them, and estimates each job's rows.
ANALYZE legacy.products, legacy.customers, legacy.orders, legacy.order_lines;

-- Target tables: same columns by name, in another order, with constraints.
CREATE TABLE public.customers (
    customer_id integer PRIMARY KEY,
    email text,
    name text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE public.products (
    price numeric(10,2) NOT NULL,
    label text NOT NULL,
    product_id integer PRIMARY KEY
);
CREATE TABLE public.orders (
    order_id bigint PRIMARY KEY,
    status text NOT NULL,
    customer_id integer NOT NULL,
    ordered_at timestamptz NOT NULL
);
CREATE TABLE public.order_lines (
    line_id bigint PRIMARY KEY,
    order_id bigint NOT NULL,
    product_id integer NOT NULL,
    quantity integer NOT NULL,
    note text,
    migrated_at timestamptz DEFAULT now()   -- not in the source: takes its default
);

CREATE EXTENSION tools;
INSERT INTO tools.config (source, target, pkey, priority, batchsize, trunc, parts) VALUES
  ('legacy.products',    'public.products',    'product_id',  1, NULL,   true, NULL),
  ('legacy.customers',   'public.customers',   'customer_id', 1, 20000,  true, NULL),
  -- orders and order_lines are each cut into key ranges that run side by side
  ('legacy.orders',      'public.orders',      'order_id',    2, 50000,  true, 2),
  ('legacy.order_lines', 'public.order_lines', 'line_id',     3, 100000, true, 3);
