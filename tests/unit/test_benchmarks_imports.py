"""Benchmarks import the tests' tools modules, never a test module.

The tools (``tests/<name>.py``: hubtools, browsertools, sharinghub, labservers, ports…)
hold no tests and are never collected; test modules (``tests/{unit,integration,browser}/``
and every conftest) may change with the tests they hold, and importing one runs its
module-level set-up (marks, fixtures, skips) inside a benchmark.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_modules(modules: set[str]) -> set[str]:
    """Those of ``modules`` that are test modules or conftests."""
    bad = set()
    for module in modules:
        parts = module.split(".")
        if parts[0] != "tests" or len(parts) < 2:
            continue
        if parts[1] in ("unit", "integration", "browser") or "conftest" in parts \
                or any(p.startswith("test_") for p in parts):
            bad.add(module)
    return bad


test_modules.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def test_benchmarks_import_no_test_module() -> None:
    scripts = sorted((ROOT / "benchmarks").rglob("*.py"))
    assert scripts
    for script in scripts:
        bad = test_modules(imported_modules(script))
        assert not bad, f"{script.relative_to(ROOT)} imports test modules: {sorted(bad)}"


def test_the_check_sees_a_test_module_import() -> None:
    assert test_modules({"tests.integration.test_tensorboard", "tests.hubtools",
                         "tests.integration.conftest.shut_down", "tests.sharinghub",
                         "tests.integration.sharing_hub"}) == {
        "tests.integration.test_tensorboard", "tests.integration.conftest.shut_down",
        "tests.integration.sharing_hub"}


def test_the_serving_benchmark_imports_cleanly_and_takes_nearest_rank_quantiles() -> None:
    from benchmarks.serving import run

    assert run.BARE.is_file() and not test_modules(imported_modules(run.BARE))
    samples = [i / 1000 for i in range(1, 101)]  # 1 … 100 ms
    assert (run.pct(samples, 0.5), run.pct(samples, 0.99)) == (51.0, 99.0)
    assert run.pct([0.004], 0.99) == 4.0
    assert len(run.ROW) == 1 and len(run.ROW[0]) == run.FEATURES
