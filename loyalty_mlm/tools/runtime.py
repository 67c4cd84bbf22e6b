"""Process-level helpers for the bulk jobs (no `odoo` import)."""

import gc
from contextlib import contextmanager


@contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector for the block.

    A bulk job that builds hundreds of thousands of rows and tuples makes the
    collector run its full passes over the whole heap (the registry, the
    caches) several times, for objects that are acyclic and freed by their
    reference counts anyway: a tenth of the nightly score refresh at 100,000
    customers. Odoo's own profiler pauses it the same way. Nested blocks are
    fine, and the collector is back on (if it was on) however the block ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class CopyStream:
    """A read-only text file over an iterable of texts, for COPY ... FROM
    STDIN (psycopg2's cursor.copy_from reads it `size` characters at a time
    and sends each piece at once).

    The texts are produced only as they are read: the client formats the
    next rows while PostgreSQL parses and stores the ones already sent,
    where a whole text built first leaves the server idle until it is
    complete, then the client idle until the server is done.
    """

    def __init__(self, texts):
        self._texts = iter(texts)
        self._rest = ""

    def read(self, size=-1):  # pylint: disable=method-required-super
        if size is None or size < 0:
            text, self._rest = self._rest + "".join(self._texts), ""
            return text
        parts, length = [self._rest], len(self._rest)
        while length < size:
            text = next(self._texts, None)
            if text is None:
                break
            parts.append(text)
            length += len(text)
        text = "".join(parts)
        self._rest = text[size:]
        return text[:size]
