"""Active-standby on a PostgreSQL journal (docs/high-availability.md).

- schema: the tables, created idempotently on SQLite and PostgreSQL (ensure_schema)
- lease: the leadership lease row, its growing term, and the fence (a conditional write)
- runner: `liqguard run --standby` / `ha:`: standby (warm detector, sends nothing) <-> leader
"""
