"""DB-free tests of loyalty_mlm/tools/runtime.py."""

import gc

import pytest

from loyalty_mlm.tools.runtime import CopyStream, gc_paused


@pytest.fixture(autouse=True)
def _collector_on():
    gc.enable()
    yield
    gc.enable()


def test_paused_inside_and_back_on_after():
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_back_on_after_an_error():
    with pytest.raises(ZeroDivisionError), gc_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_nested_blocks_leave_it_to_the_outer_one():
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_left_off_when_it_was_off():
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_copy_stream_reads_pieces_lazily_in_sizes():
    produced = []

    def texts():
        for n in range(5):
            produced.append(n)
            yield f"line {n}\n"

    stream = CopyStream(texts())
    assert produced == []  # nothing formatted before COPY reads
    assert stream.read(10) == "line 0\nlin"
    assert produced == [0, 1]
    assert stream.read(3) == "e 1"
    assert produced == [0, 1]  # served from what was left over
    assert stream.read(1000) == "\nline 2\nline 3\nline 4\n"
    assert stream.read(1000) == ""


def test_copy_stream_reads_everything():
    assert CopyStream(["a\n", "b\n"]).read() == "a\nb\n"
    assert CopyStream([]).read(8192) == ""
