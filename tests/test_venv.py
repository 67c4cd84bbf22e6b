"""DB-free tests of the Odoo add-ons the harness installs into the venv."""

import ast
from pathlib import Path

from harness import venv as venv_module
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


def test_db_free_run_keeps_a_venv_built_with_odoo(tmp_path, monkeypatch):
    """A DB-free run in a venv that has the tools changes nothing: rebuilding
    it without Odoo used to take Odoo off its path (a shared venv broke)."""
    root = Path(__file__).resolve().parent.parent
    venv = tmp_path / "venv"
    python = venv_module.venv_python(venv)
    python.parent.mkdir(parents=True)
    python.write_text("")
    (venv / venv_module.STAMP).write_text("built with Odoo")
    (venv / venv_module.DEV_STAMP).write_text(venv_module.tools_digest(root))

    def refuse(*args, **kwargs):
        raise AssertionError("the venv was rebuilt")

    monkeypatch.setattr(venv_module, "run", refuse)
    assert venv_module.ensure_venv(venv, root, None, apt=None) == python
