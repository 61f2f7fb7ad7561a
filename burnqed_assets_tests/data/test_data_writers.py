"""`ConcurrentWrite`, the data path's threaded file writer: bytes in order and at their offsets, errors surfaced."""

from __future__ import annotations

import os

import pytest

from burnqed_assets.data.io import ConcurrentWrite


def _buffers() -> list[bytes]:
    return [bytes([65 + k % 26]) * (1000 + 37 * k) for k in range(50)] + [b"", b"tail\n"]


@pytest.mark.parametrize("threads", [1, 2, 3, 60])
def test_concurrent_write_gives_the_buffers_in_order(tmp_path, threads):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"x" * 10**6)  # a longer old file is truncated
    writing = ConcurrentWrite(dest, _buffers(), threads=threads)
    writing.wait()
    assert dest.read_bytes() == b"".join(_buffers())
    assert writing.size == len(b"".join(_buffers()))


def test_concurrent_write_raises_a_threads_error(tmp_path, monkeypatch):
    def fail(fd, data, offset):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", fail)
    writing = ConcurrentWrite(tmp_path / "out.bin", _buffers())
    with pytest.raises(OSError, match="No space left"):
        writing.wait()


def test_concurrent_write_handles_a_short_write(tmp_path, monkeypatch):
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: real(fd, data[:7], offset))
    ConcurrentWrite(tmp_path / "out.bin", _buffers()).wait()
    assert (tmp_path / "out.bin").read_bytes() == b"".join(_buffers())


def test_concurrent_write_puts_each_buffer_at_its_offset(tmp_path):
    """Buffers at given offsets in a file of a given size (the gaps are another writer's)."""
    dest = tmp_path / "out.bin"
    writing = ConcurrentWrite(dest, [b"abc", b"XY"], offsets=[5, 0], size=10)
    writing.wait()
    assert dest.read_bytes() == b"XY\0\0\0abc\0\0"
