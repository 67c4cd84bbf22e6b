"""DB-free check that the Dutch translation keeps up with the template."""

from pathlib import Path

import polib

I18N = Path(__file__).resolve().parent.parent / "loyalty_mlm" / "i18n"


def test_dutch_translation_is_complete():
    template = {entry.msgid for entry in polib.pofile(str(I18N / "loyalty_mlm.pot"))}
    dutch = polib.pofile(str(I18N / "nl.po"))
    translated = {entry.msgid for entry in dutch if entry.msgstr and not entry.obsolete}
    assert sorted(template - translated) == []
    assert dutch.metadata["Language"] == "nl"
