"""Pure functions (no `odoo` import): scoring, quantiles, FIFO, stage rules, KPIs.

Tested without a database in the repository's top-level tests/ folder.
"""
