DROP TABLE plans;
DROP TABLE products;
