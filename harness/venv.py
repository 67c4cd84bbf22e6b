"""Project-local virtual environment with Odoo's requirements and ours.

Odoo itself is not installed into it: a .pth file puts the existing source
tree on sys.path, so `import odoo` finds the tree the harness located.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

from .odoo_src import newest_pins
from .shell import run, say

STAMP = ".loyalty_mlm-stamp"
# Stamp of the DB-free part's needs (the project's tools), which a venv
# built with Odoo holds too.
DEV_STAMP = ".loyalty_mlm-stamp-dev"
# Odoo add-ons from PyPI that loyalty_mlm depends on; they declare the `odoo`
# package as a dependency, which the venv must not install: --no-deps.
ADDONS_REQUIREMENTS = "requirements-addons.txt"


def _requirements(path):
    """Requirement lines of `path` (none if it does not exist)."""
    if not path.exists():
        return []
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def venv_python(venv):
    return Path(venv, "bin", "python")


def tools_digest(root):
    """Digest of what the DB-free part needs: the project's tools and add-ons."""
    tools = _requirements(Path(root, "requirements-dev.txt"))
    addons = _requirements(Path(root, ADDONS_REQUIREMENTS))
    return hashlib.sha256(
        "\n".join([sys.version, *tools, "--no-deps", *addons]).encode()
    ).hexdigest()


def ensure_venv(venv, root, odoo_src, apt):
    """Create/update the venv idempotently; return its python path."""
    venv = Path(venv)
    lines = []
    if odoo_src:
        apt.install(
            ["libpq-dev", "libldap2-dev", "libsasl2-dev"],
            why="building Odoo's Python requirements (psycopg2, python-ldap)",
        )
        # reportlab 4 draws barcodes (/report/barcode, POS receipts' coupon
        # codes) through the rlPyCairo backend, whose pycairo builds from
        # source against cairo's headers.
        apt.install(
            ["libcairo2-dev", "pkg-config"],
            why="building pycairo, reportlab's barcode renderer (rlPyCairo)",
        )
        lines += newest_pins(
            Path(odoo_src, "requirements.txt").read_text(encoding="utf-8")
        )
    tools = _requirements(Path(root, "requirements-dev.txt"))
    lines += tools
    addons = _requirements(Path(root, ADDONS_REQUIREMENTS))
    wanted = "\n".join([sys.version, str(odoo_src), *lines, "--no-deps", *addons])
    digest = hashlib.sha256(wanted.encode()).hexdigest()
    dev_digest = tools_digest(root)
    python = venv_python(venv)
    stamp, dev_stamp = venv / STAMP, venv / DEV_STAMP
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    # A DB-free run (no Odoo tree) in a venv that has the tools: nothing to
    # do. Rebuilding it without Odoo would take Odoo off its path, and the
    # next full run (or one in another checkout sharing the venv) would fail.
    if (
        not odoo_src
        and python.exists()
        and dev_stamp.exists()
        and dev_stamp.read_text() == dev_digest
    ):
        return python
    if not python.exists():
        say(f"Creating the virtual environment {venv}")
        run([sys.executable, "-m", "venv", str(venv)])
    requirements = venv / "requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    say("Installing Python requirements (Odoo's newest pins and the project's tools)")
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--upgrade",
            "pip",
            "wheel",
            "setuptools",
        ]
    )
    run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)])
    if addons:
        say("Installing the Odoo add-ons loyalty_mlm depends on (no dependencies)")
        run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", *addons],
        )
    site = subprocess.run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pth = Path(site, "loyalty_mlm_odoo_src.pth")
    if odoo_src:
        pth.write_text(f"{odoo_src}\n")
    elif pth.exists():
        pth.unlink()
    stamp.write_text(digest)
    dev_stamp.write_text(dev_digest)
    return python
