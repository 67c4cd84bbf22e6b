"""DB-free tests of where the harness puts the private PostgreSQL cluster."""

import os
from pathlib import Path

import pytest

from harness import pg
from harness.shell import HarnessError


@pytest.fixture(autouse=True)
def _fallback_in_tmp(tmp_path, monkeypatch):
    # The fallback folders go to a test folder, not the real /var/tmp.
    monkeypatch.setattr(pg, "FALLBACK_PARENT", tmp_path / "var-tmp")
    (tmp_path / "var-tmp").mkdir()


def reachable(path):
    return True


def unreachable(path):
    return False


def test_reachable_run_dir_keeps_the_cluster():
    assert pg.cluster_dir("/work/x/.run", {}, reachable) == Path("/work/x/.run/pg")


def test_probe_asks_about_the_run_dir():
    asked = []
    pg.cluster_dir("/work/x/.run", {}, lambda path: asked.append(path) or True)
    assert asked == [Path("/work/x/.run")]


def test_unreachable_run_dir_moves_the_cluster_and_says_where(capsys):
    path = pg.cluster_dir("/root/x/.run", {}, unreachable)
    home = path.parent
    assert path.name == "pg"
    assert home.parent == pg.FALLBACK_PARENT
    assert home.name.startswith("loyalty_mlm-")
    assert home.is_dir()
    assert oct(home.stat().st_mode & 0o777) == oct(0o711)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert f"cluster lives in {path}" in out
    assert "/root/x/.run" in out


def test_same_checkout_same_place_two_checkouts_two_places():
    first = pg.cluster_dir("/root/a/loyalty_mlm/.run", {}, unreachable)
    again = pg.cluster_dir("/root/a/loyalty_mlm/.run", {}, unreachable)
    other = pg.cluster_dir("/root/b/loyalty_mlm/.run", {}, unreachable)
    assert first == again
    assert first != other


def test_chosen_run_dir_is_honoured():
    environ = {"LOYALTY_MLM_RUN_DIR": "/srv/mlm"}
    assert pg.cluster_dir("/srv/mlm", environ, reachable) == Path("/srv/mlm/pg")


def test_chosen_unreachable_run_dir_is_refused(capsys):
    environ = {"LOYALTY_MLM_RUN_DIR": "/root/mlm"}
    with pytest.raises(HarnessError):
        pg.cluster_dir("/root/mlm", environ, unreachable)
    err = capsys.readouterr().err
    assert "cannot reach /root/mlm; set LOYALTY_MLM_RUN_DIR" in err
    assert list(pg.FALLBACK_PARENT.iterdir()) == []


def test_fallback_taken_by_someone_else_is_refused(capsys):
    home = pg.cluster_dir("/root/x/.run", {}, unreachable).parent
    home.rmdir()
    home.symlink_to(pg.FALLBACK_PARENT)  # as if someone laid a trap first
    with pytest.raises(HarnessError):
        pg.cluster_dir("/root/x/.run", {}, unreachable)
    assert "does not belong to us" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a folder over")
def test_fallback_owned_by_another_user_is_refused(capsys):
    home = pg.cluster_dir("/root/x/.run", {}, unreachable).parent
    os.chown(home, 65534, 65534)
    with pytest.raises(HarnessError):
        pg.cluster_dir("/root/x/.run", {}, unreachable)
    assert "does not belong to us" in capsys.readouterr().err
