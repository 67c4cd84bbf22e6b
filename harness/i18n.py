"""Regenerate loyalty_mlm.pot from a database and merge it into nl.po.

Existing Dutch translations are kept; new strings get an empty msgstr (the
DB-free test tests/test_i18n.py then fails until they are translated).
"""

import polib


def merge_po(pot_path, po_path):
    """Update po_path to the template's entries; return the untranslated msgids."""
    template = polib.pofile(str(pot_path))
    try:
        old = {entry.msgid: entry for entry in polib.pofile(str(po_path))}
    except OSError:
        old = {}
    po = polib.POFile(wrapwidth=78)
    po.header = template.header
    po.metadata = dict(template.metadata)
    po.metadata.update(
        {"Language": "nl", "Plural-Forms": "nplurals=2; plural=(n != 1);"}
    )
    missing = []
    for entry in template:
        known = old.get(entry.msgid)
        msgstr = known.msgstr if known and not known.obsolete else ""
        po.append(
            polib.POEntry(
                msgid=entry.msgid,
                msgstr=msgstr,
                occurrences=entry.occurrences,
                comment=entry.comment,
                tcomment=entry.tcomment,
                flags=entry.flags,
            )
        )
        if not msgstr:
            missing.append(entry.msgid)
    po.save(str(po_path))
    return missing
