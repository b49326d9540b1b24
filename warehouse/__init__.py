"""The DuckDB warehouse: one file per zone so independent writers never share a lock."""
