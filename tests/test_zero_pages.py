"""Large zeroed arrays stay unwritten under the CLI's allocator (sim/micro/zero_pages.py).

With ``xpusim/heap.py``'s ``mallopt`` (freed blocks kept on the heap), ``np.zeros`` of a block
the heap held before is a ``calloc`` that writes every byte: resident memory grows by the whole
array. ``sparse_zeros`` maps its own pages, resident only once written.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.micro.zero_pages import MAP_FROM, sparse_zeros

_PROBE = """
import sys
from xpusim.heap import keep_freed_memory
if not keep_freed_memory():
    print("unset"); raise SystemExit
import numpy as np
from sim.micro.zero_pages import sparse_zeros
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
n = 64 << 20
a = np.zeros(n, np.uint8); del a        # a block the heap now holds
before = rss()
b = (sparse_zeros if sys.argv[1] == "sparse" else np.zeros)(n, np.uint8)
b[12345] = 7
print((rss() - before) >> 20, int(b.sum()), int(b.max()))
"""


def _grown_mib(kind: str, cwd: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE, kind], capture_output=True, text=True,
                         check=True, cwd=cwd)
    return out.stdout.split()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_large_array_is_not_written_where_np_zeros_is(tmp_path):
    plain = _grown_mib("zeros", tmp_path)
    if plain == ["unset"]:
        pytest.skip("glibc mallopt unavailable: the allocator is left as it is")
    if int(plain[0]) < 32:
        pytest.skip(f"np.zeros did not write the reused block here ({plain[0]} MiB)")
    grown, total, top = map(int, _grown_mib("sparse", tmp_path))
    assert grown < 4 and total == 7 and top == 7   # one page written, the rest zero


def test_small_and_large_arrays_are_zero_writable_and_contiguous():
    for n, dtype in ((10, np.int32), (MAP_FROM // 8 + 3, np.uint64), (0, np.int32)):
        a = sparse_zeros(n, dtype)
        assert a.shape == (n,) and a.dtype == np.dtype(dtype) and a.flags.c_contiguous
        assert a.flags.writeable and not a.any()
        if n:
            a[-1] = 5
            assert int(a.sum()) == 5
