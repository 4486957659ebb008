"""The store: the only package that knows SQL (engine + pragmas, tables, queries, migrations)."""
