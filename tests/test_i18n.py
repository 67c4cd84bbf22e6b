"""DB-free check that the Dutch translation keeps up with the template."""

from pathlib import Path

import polib
import pytest
from babel.messages.extract import extract_python

ROOT = Path(__file__).resolve().parent.parent
# The add-on and its web shop bridge each keep their template and Dutch.
MODULES = ("loyalty_mlm", "loyalty_mlm_website_sale")


@pytest.mark.parametrize("module", MODULES)
def test_dutch_translation_is_complete(module):
    i18n = ROOT / module / "i18n"
    template = {entry.msgid for entry in polib.pofile(str(i18n / f"{module}.pot"))}
    dutch = polib.pofile(str(i18n / "nl.po"))
    translated = {entry.msgid for entry in dutch if entry.msgstr and not entry.obsolete}
    assert sorted(template - translated) == []
    assert dutch.metadata["Language"] == "nl"


def test_every_python_file_is_extractable():
    """Odoo's Babel (2.10) evaluates the tokens inside _() calls: an f-string
    there silently drops every string of the file from the .pot."""
    broken = []
    paths = [path for module in MODULES for path in (ROOT / module).rglob("*.py")]
    for path in sorted(paths):
        with path.open("rb") as handle:
            try:
                list(extract_python(handle, ["_"], [], {}))
            except Exception as exc:  # any failure drops the file's strings
                broken.append(f"{path.relative_to(ROOT)}: {exc}")
    assert broken == []
