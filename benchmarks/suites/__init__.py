"""The suites, one module per table, and the cases they measure (cases.py)."""
