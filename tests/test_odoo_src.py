"""DB-free tests of how the harness finds Odoo and derives its requirements."""

from pathlib import Path

import pytest

from harness.odoo_src import (
    DEFAULT_ODOO_SRC,
    OdooNotFound,
    locate_odoo,
    newest_pins,
    odoo_src_candidate,
    read_series,
)


def make_tree(root: Path, version="(18, 0, 0, FINAL, 0, '')"):
    (root / "odoo").mkdir(parents=True)
    (root / "odoo-bin").write_text("#!/usr/bin/env python3\n")
    (root / "odoo" / "release.py").write_text(f"version_info = {version}\n")
    return root


def test_default_location_when_unset():
    assert odoo_src_candidate({}) == Path(DEFAULT_ODOO_SRC)
    assert odoo_src_candidate({"ODOO_SRC": ""}) == Path(DEFAULT_ODOO_SRC)


def test_odoo_src_overrides_default(tmp_path):
    tree = make_tree(tmp_path / "odoo18")
    assert locate_odoo({"ODOO_SRC": str(tree)}) == tree.resolve()


def test_missing_tree_gives_one_clear_sentence(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(OdooNotFound) as err:
        locate_odoo({"ODOO_SRC": str(missing)})
    message = str(err.value)
    assert str(missing) in message
    assert "ODOO_SRC" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_tree_without_release_file(tmp_path):
    (tmp_path / "odoo-bin").write_text("")
    with pytest.raises(OdooNotFound, match=r"looked for odoo-bin and odoo/release\.py"):
        locate_odoo({"ODOO_SRC": str(tmp_path)})


@pytest.mark.parametrize(
    "version, found",
    [("(17, 0, 0, FINAL, 0, '')", "17.0"), ("(19, 0, 0, FINAL, 0, '')", "19.0")],
)
def test_wrong_series_is_refused(tmp_path, version, found):
    tree = make_tree(tmp_path / "odoo", version)
    with pytest.raises(OdooNotFound, match=rf"is {found}, not 18\.0"):
        locate_odoo({"ODOO_SRC": str(tree)})


def test_unreadable_version(tmp_path):
    tree = make_tree(tmp_path / "odoo", "None")
    assert read_series(tree) is None
    with pytest.raises(OdooNotFound, match="unknown version"):
        locate_odoo({"ODOO_SRC": str(tree)})


def test_newest_pin_per_package_wins():
    text = """
# comment
cryptography==3.4.8; python_version < '3.12'  # old
cryptography==42.0.8 ; python_version >= '3.12'
gevent==22.10.2; sys_platform != 'win32' and python_version > '3.10'
gevent==24.2.1 ; sys_platform != 'win32' and python_version >= '3.12'
lxml-html-clean; python_version >= '3.12'
pypiwin32 ; sys_platform == 'win32'
pytz  # no version pinning
Werkzeug==2.0.2 ; python_version <= '3.10'
Werkzeug==3.0.1 ; python_version >= '3.12'
Werkzeug==2.2.2 ; python_version > '3.10' and python_version < '3.12'
"""
    assert newest_pins(text) == [
        "cryptography==42.0.8",
        "gevent==24.2.1",
        "lxml-html-clean",
        "pytz",
        "Werkzeug==3.0.1",
    ]


def test_version_order_is_numeric_not_textual():
    text = "psutil==5.9.10\npsutil==5.9.8\n"
    assert newest_pins(text) == ["psutil==5.9.10"]
