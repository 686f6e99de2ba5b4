DROP TABLE instances;
DROP TABLE nodes;
