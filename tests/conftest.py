"""DB-free tests import the add-on's pure `loyalty_mlm.tools` package.

The add-on's own __init__ imports Odoo models, so we register `loyalty_mlm` as a
bare package pointing at its folder: `import loyalty_mlm.tools.x` then loads only
the pure modules (which never import odoo), with or without Odoo installed.
"""

import sys
import types
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent.parent / "loyalty_mlm"

if "loyalty_mlm" not in sys.modules:
    package = types.ModuleType("loyalty_mlm")
    package.__path__ = [str(ADDON_DIR)]
    sys.modules["loyalty_mlm"] = package
