"""Inbound intake (rule 15): a verified webhook is recorded once, durably, before the 200; applying it follows.

- `records.py` (pure): the intake record, its JSON shape, and what intake reads from a message.
- `services.py`: `intake_record` (one idempotent write) and `intake_trigger` (makes sure an applier runs).
- `applier.py`: applies recorded rows in arrival order per number, each exactly once.
- `fallback.py`: records kept in Redis while the database cannot be reached, and their drain back into the table.
"""
