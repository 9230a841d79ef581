"""The DuckDB store: schema, inbox shards, CSV import and plot queries.

Never imports torch, triton, fitting, trainers or app.
"""
