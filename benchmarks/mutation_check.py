"""Mutation check: does some test fail when a mechanism is changed by a factor of two or a cycle?

Usage: python benchmarks/mutation_check.py SPEC.yaml [--timeout 600] [--quick] [--json]

``SPEC.yaml`` lists mutants, each a one-place edit of a source file::

    - id: gemm-waves
      file: sim/gpu/gemm.py
      find: "waves = math.ceil(ctas / slots)"
      replace: "waves = math.ceil(ctas / slots) + 1"
      tests: [tests/test_gpu_gemm.py]      # optional; default: every test file naming the module
      count: 1       # optional: how often ``find`` occurs; every one is replaced (a mechanism
                     # written twice, e.g. a scalar and an array path)

For each mutant the file is edited (``find`` must occur exactly ``count`` times), the tests
run with ``pytest -x`` and the file is restored byte for byte: first the listed tests
(default: the test files naming the module), then, where they all pass, the rest of
``tests/`` (a mechanism is often checked through the modules that use it; ``--quick``: the
listed tests only). A mutant is *killed* when a test fails, *survived* when all pass. One row
per mutant: killed or not, the first failing test, seconds. Exit status 1 when any mutant
survived (a mechanism no test checks), 2 on a bad spec. Run it in a worktree of its own: it
edits files in place while the tests run, and a test that fails on the unedited tree (say,
reference data absent) kills every mutant.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_spec(path: Path) -> list[dict]:
    """The mutants of ``path``, checked: each has id, file, find, replace (tests optional)."""
    try:
        items = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SystemExit(f"mutation_check: {path}: cannot read the spec "
                         f"({str(exc).splitlines()[0]})") from None
    if not isinstance(items, list):
        raise SystemExit(f"mutation_check: {path}: expected a list of mutants")
    for n, item in enumerate(items):
        for key in ("id", "file", "find", "replace"):
            if not isinstance(item, dict) or not isinstance(item.get(key), str):
                raise SystemExit(f"mutation_check: {path}: mutant {n}: field '{key}' must be "
                                 "a string")
        if not isinstance(item.get("count", 1), int) or item.get("count", 1) < 1:
            raise SystemExit(f"mutation_check: {path}: mutant {n}: field 'count' must be a "
                             "positive integer")
        if not (ROOT / item["file"]).is_file():
            raise SystemExit(f"mutation_check: {path}: mutant {n}: field 'file': no file "
                             f"{item['file']} under {ROOT}")
        tests = item.get("tests", [])
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise SystemExit(f"mutation_check: {path}: mutant {n}: field 'tests' must be a "
                             "list of test paths")
        missing = [t for t in tests if not (ROOT / t.split("::")[0]).exists()]
        if missing:     # pytest would fail on it: a false kill
            raise SystemExit(f"mutation_check: {path}: mutant {n}: field 'tests': no "
                             f"{missing[0]} under {ROOT}")
    return items


def tests_naming(module_file: str) -> list[str]:
    """Test files whose text names the module (its dotted path or ``from pkg import name``)."""
    dotted = module_file.removesuffix(".py").replace("/", ".")
    pkg, _, name = dotted.rpartition(".")
    pattern = re.compile(rf"\b{re.escape(dotted)}\b|from {re.escape(pkg)} import [^\n]*\b"
                         rf"{re.escape(name)}\b")
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                  if pattern.search(p.read_text(errors="replace")))


def run_mutant(item: dict, timeout: float, quick: bool = False) -> dict:
    """Apply one mutant, run its tests, restore the file; the row of the result table."""
    path = ROOT / item["file"]
    original = path.read_bytes()
    text = original.decode()
    count = text.count(item["find"])
    if count != item.get("count", 1):
        return {"id": item["id"], "status": f"bad spec: 'find' occurs {count} times",
                "failed": "", "seconds": 0.0}
    first = item.get("tests") or tests_naming(item["file"])
    if quick and not first:     # nothing would run: not a survivor
        return {"id": item["id"], "status": "no tests name the module", "failed": "",
                "seconds": 0.0}
    t0 = time.perf_counter()
    status, failed = "survived", ""
    try:
        path.write_text(text.replace(item["find"], item["replace"]))
        rest = [] if quick else ["tests", *(f"--deselect={t}" for t in first)]
        for tests in (first, rest):
            if not tests:
                continue
            proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                                   "no:cacheprovider", *tests], cwd=ROOT, capture_output=True,
                                  text=True, timeout=timeout)
            if proc.returncode != 0:
                out = proc.stdout + proc.stderr
                status = "killed"
                failed = next((line.split(" ")[1] for line in out.splitlines()
                               if line.startswith(("FAILED ", "ERROR "))), "?")
                break
    except subprocess.TimeoutExpired:
        status, failed = "killed (timeout)", ""
    finally:
        path.write_bytes(original)
    return {"id": item["id"], "status": status, "failed": failed,
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    ap.add_argument("--quick", action="store_true", help="the listed tests only")
    ap.add_argument("--json", action="store_true", help="rows as JSON lines")
    args = ap.parse_args(argv)
    try:
        items = load_spec(args.spec)
    except SystemExit as exc:     # a bad spec: its one line, exit 2, nothing edited
        print(exc, file=sys.stderr)
        return 2
    rows = []
    for item in items:
        row = run_mutant(item, args.timeout, args.quick)
        rows.append(row)
        print(json.dumps(row) if args.json else
              f"{row['id']:32s} {row['status']:10s} {row['seconds']:7.1f} s  {row['failed']}",
              flush=True)
    survived = [r["id"] for r in rows if r["status"] == "survived"]
    bad = [r["id"] for r in rows if r["status"] not in ("killed", "survived",
                                                         "killed (timeout)")]
    print(f"{len(rows)} mutants: {len(rows) - len(survived) - len(bad)} killed, "
          f"{len(survived)} survived{', ' + str(len(bad)) + ' not run' if bad else ''}")
    return 2 if bad else (1 if survived else 0)


if __name__ == "__main__":
    sys.exit(main())
