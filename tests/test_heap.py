"""The CLI's allocation settings (xpusim/heap.py): set where asked, left alone where not."""

import os
import platform

import pytest

from xpusim import heap


def test_huge_pages_off_unless_the_user_chose(monkeypatch):
    monkeypatch.setenv("XPUSIM_KEEP_FREED", "0")
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    heap.tune_allocation()
    assert os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0"
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    heap.tune_allocation()
    assert os.environ["NUMPY_MADVISE_HUGEPAGE"] == "1"


def test_keep_freed_memory_opt_out(monkeypatch):
    monkeypatch.setenv("XPUSIM_KEEP_FREED", "0")
    assert heap.keep_freed_memory() is False


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_keep_freed_memory_sets_glibc(monkeypatch):
    monkeypatch.delenv("XPUSIM_KEEP_FREED", raising=False)
    assert heap.keep_freed_memory() is True     # glibc took each value (mallopt: 1)
