"""Developer harness of loyalty_mlm: finds Odoo, prepares a venv and PostgreSQL,
runs the demo and the tests. It never downloads or installs Odoo itself."""
