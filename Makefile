# The README's two commands. Everything else lives in harness/ (Python).
PYTHON ?= python3

.PHONY: demo test lint pot

demo:  ## run the demo: prepare, build/reuse the demo database, serve :8069
	$(PYTHON) -m harness.run demo

test:  ## run the tests: lint, DB-free tests, Odoo suite (browser tests included)
	$(PYTHON) -m harness.run test

lint:  ## ruff + pylint-odoo mandatory checks only
	$(PYTHON) -m harness.run lint

pot:  ## regenerate loyalty_mlm.pot from the demo database and merge nl.po
	$(PYTHON) -m harness.run pot
