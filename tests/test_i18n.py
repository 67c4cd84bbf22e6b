"""DB-free check that the Dutch translation keeps up with the template."""

from pathlib import Path

import polib
from babel.messages.extract import extract_python

I18N = Path(__file__).resolve().parent.parent / "loyalty_mlm" / "i18n"


def test_dutch_translation_is_complete():
    template = {entry.msgid for entry in polib.pofile(str(I18N / "loyalty_mlm.pot"))}
    dutch = polib.pofile(str(I18N / "nl.po"))
    translated = {entry.msgid for entry in dutch if entry.msgstr and not entry.obsolete}
    assert sorted(template - translated) == []
    assert dutch.metadata["Language"] == "nl"


def test_every_python_file_is_extractable():
    """Odoo's Babel (2.10) evaluates the tokens inside _() calls: an f-string
    there silently drops every string of the file from the .pot."""
    addon = I18N.parent
    broken = []
    for path in sorted(addon.rglob("*.py")):
        with path.open("rb") as handle:
            try:
                list(extract_python(handle, ["_"], [], {}))
            except Exception as exc:  # any failure drops the file's strings
                broken.append(f"{path.relative_to(addon)}: {exc}")
    assert broken == []
