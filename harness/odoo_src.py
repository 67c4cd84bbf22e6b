"""Locate an existing Odoo 18.0 source tree and derive its Python requirements.

Pure functions (no Odoo import, no network) so the top-level DB-free tests can
cover them.
"""

import os
import re
from pathlib import Path

DEFAULT_ODOO_SRC = "/opt/odoo"
ODOO_SERIES = (18, 0)
_VERSION_RE = re.compile(r"^version_info\s*=\s*\(\s*(\d+)\s*,\s*(\d+)", re.MULTILINE)
# Windows-only lines of requirements.txt are of no use on the machines we run on.
_WINDOWS_ONLY_RE = re.compile(r"sys_platform\s*==\s*['\"]win32['\"]")
_REQ_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(?:==\s*([^\s;]+))?")


class OdooNotFound(Exception):
    """No usable Odoo 18.0 tree where we looked; str() is one clear sentence."""


def odoo_src_candidate(environ=None):
    """Path we look at: $ODOO_SRC when set (and not empty), else /opt/odoo."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("ODOO_SRC") or DEFAULT_ODOO_SRC).expanduser()


def read_series(src):
    """(major, minor) read from odoo/release.py of a tree, or None."""
    release = Path(src) / "odoo" / "release.py"
    try:
        text = release.read_text(encoding="utf-8")
    except OSError:
        return None
    match = _VERSION_RE.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def locate_odoo(environ=None):
    """Return the resolved path of the Odoo 18.0 tree, or raise OdooNotFound."""
    environ = os.environ if environ is None else environ
    src = odoo_src_candidate(environ)
    origin = "ODOO_SRC" if environ.get("ODOO_SRC") else "the default location"
    hint = "set ODOO_SRC=/path/to/odoo to point at an Odoo 18.0 source tree"
    if not (src / "odoo-bin").is_file() or not (src / "odoo" / "release.py").is_file():
        raise OdooNotFound(
            f"No Odoo 18.0 source tree found at {src} ({origin}): looked for "
            f"odoo-bin and odoo/release.py there; {hint}."
        )
    series = read_series(src)
    if series != ODOO_SERIES:
        found = ".".join(map(str, series)) if series else "an unknown version"
        raise OdooNotFound(
            f"The Odoo tree at {src} ({origin}) is {found}, not 18.0; {hint}."
        )
    return src.resolve()


def _version_key(version):
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\-]", version))


def newest_pins(requirements_text):
    """One line per package, keeping the newest `==` pin Odoo lists for it.

    Odoo's requirements.txt pins each package per Python/OS release; on Python
    3.11 the oldest pins (e.g. cryptography 3.4.8) no longer build, while the
    newest pin of each package installs fine. Markers are dropped on purpose:
    the newest pin is what we install whatever the Python version. Unpinned
    packages stay unpinned; Windows-only packages are left out.
    """
    newest = {}
    for raw in requirements_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        _req, _sep, marker = line.partition(";")
        if _WINDOWS_ONLY_RE.search(marker):
            continue
        match = _REQ_RE.match(line)
        if not match:
            continue
        name, version = match.group(1), match.group(2)
        key = name.lower().replace("_", "-")
        if key not in newest:
            newest[key] = (name, version)
            continue
        known = newest[key][1]
        if version and (not known or _version_key(version) > _version_key(known)):
            newest[key] = (name, version)
    return [
        f"{name}=={version}" if version else name for name, version in newest.values()
    ]
