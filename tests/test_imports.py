"""Imports go one way: kernels_ref/arch/workloads -> mappings -> sim -> dse -> xpusim (CLI)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "kernels_ref": set(),
    "arch": set(),
    "workloads": set(),
    "mappings": {"arch", "workloads"},
    "sim": {"arch", "workloads", "mappings", "kernels_ref"},
    "dse": {"arch", "workloads", "mappings", "kernels_ref", "sim"},
}
OURS = set(ALLOWED) | {"xpusim"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


def test_one_way_imports():
    bad = []
    for pkg, allowed in ALLOWED.items():
        for path in (ROOT / pkg).rglob("*.py"):
            for imp in _imports(path) - allowed - {pkg}:
                bad.append(f"{path.relative_to(ROOT)} imports {imp}")
    assert not bad, "imports against the one-way order:\n" + "\n".join(bad)
