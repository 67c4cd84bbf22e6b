"""DB-free tests of the Odoo add-ons the harness installs into the venv."""

import ast
from pathlib import Path

from harness.venv import ADDONS_REQUIREMENTS, _requirements

ROOT = Path(__file__).resolve().parent.parent


def test_requirements_skip_comments_and_blank_lines(tmp_path):
    path = tmp_path / "req.txt"
    path.write_text("# a comment\n\nfoo==1.0\n  bar==2.0  \n", encoding="utf-8")
    assert _requirements(path) == ["foo==1.0", "bar==2.0"]
    assert _requirements(tmp_path / "missing.txt") == []


def test_addons_are_pinned_exactly():
    lines = _requirements(ROOT / ADDONS_REQUIREMENTS)
    assert lines == [
        "odoo-addon-loyalty-partner-applicability==18.0.1.0.0.2",
        "odoo-addon-sale-loyalty-partner-applicability==18.0.1.0.0.2",
    ]


def test_manifest_depends_on_the_pinned_addon():
    manifest = ast.literal_eval(
        (ROOT / "loyalty_mlm" / "__manifest__.py").read_text(encoding="utf-8")
    )
    assert "sale_loyalty_partner_applicability" in manifest["depends"]
