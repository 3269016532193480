"""The database: engine, schema, migrations and one module of queries per resource."""
