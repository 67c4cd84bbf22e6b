# The README's two commands. Everything else lives in harness/ (Python).
PYTHON ?= python3

.PHONY: demo test test-peers lint pot

demo:  ## run the demo: prepare, build/reuse the demo database, serve :8069
	$(PYTHON) -m harness.run demo

test:  ## run the tests: lint, DB-free tests, Odoo suite (browser tests included)
	$(PYTHON) -m harness.run test

test-peers:  ## Odoo's loyalty, sale_loyalty, pos_loyalty and OCA's partner-applicability suites with loyalty_mlm installed
	$(PYTHON) -m harness.run test-peers

lint:  ## ruff + pylint-odoo mandatory checks only
	$(PYTHON) -m harness.run lint

pot:  ## regenerate loyalty_mlm.pot from the demo database and merge nl.po
	$(PYTHON) -m harness.run pot
