-- demo/legacy.sql: the database being migrated (the source side).
CREATE SCHEMA shop;
CREATE TABLE shop.customers (
    customer_id integer PRIMARY KEY,
    name text NOT NULL,
    email text,
    created_at timestamptz NOT NULL
);
CREATE TABLE shop.products (
    product_id integer PRIMARY KEY,
    label text NOT NULL,
    price numeric(10,2) NOT NULL
);
CREATE TABLE shop.orders (
    order_id bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    ordered_at timestamptz NOT NULL,
    status text NOT NULL
);
CREATE TABLE shop.order_lines (
    line_id bigint PRIMARY KEY,
    order_id bigint NOT NULL,
    product_id integer NOT NULL,
    quantity integer NOT NULL,
    note text
);

INSERT INTO shop.customers
SELECT g, 'customer ' || g, 'c' || g || '@example.com',
       timestamptz '2020-01-01' + g * interval '17 minutes'
  FROM generate_series(1, 50000) g;
INSERT INTO shop.products
SELECT g, 'product ' || g, (g % 1000) / 10.0 + 0.99
  FROM generate_series(1, 5000) g;
INSERT INTO shop.orders
SELECT g, 1 + g % 50000, timestamptz '2021-01-01' + g * interval '3 minutes',
       (ARRAY['new', 'paid', 'shipped', 'closed'])[1 + g % 4]
  FROM generate_series(1, 200000) g;
INSERT INTO shop.order_lines
SELECT g, 1 + g / 2, 1 + g % 5000, 1 + g % 7, CASE WHEN g % 10 = 0 THEN 'gift' END
  FROM generate_series(1, 400000) g;
ANALYZE;
