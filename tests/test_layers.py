"""The package's layers point one way, and SQL lives in one layer.

Bottom to top: the foundation (config, rows, procs, staging, locks, results), the stages
(fetching, enrich: computation over staged files, which never see a database connection), the
database layer
(db), the drivers and readers (run, analysis, demo), the command line (cli). A module may import
from its own layer or below, never above; below the top two layers no import of newsflow is
deferred into a function (a deferred import is how a cycle hides).
"""

from __future__ import annotations

import ast
import re

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "pipeline" / "newsflow"
LAYERS = {
    "newsflow": 0,
    "config": 0,
    "rows": 0,
    "procs": 0,
    "staging": 0,
    "locks": 0,
    "results": 0,
    "fetching": 1,
    "enrich": 1,
    "db": 2,
    "run": 3,
    "analysis": 3,
    "demo": 3,
    "cli": 4,
}
# Layers whose functions may import newsflow modules on first use (the command line and the
# Airflow task functions keep `newsflow --help` and DAG parsing from loading spaCy and pyarrow).
DEFERRED_OK = {"cli", "run"}
# The package's public API reaches into the database layer on first call: `from newsflow
# import connect` (importing newsflow loads nothing else).
PUBLIC_ENTRY_POINTS = {("newsflow", "newsflow.db.store", True)}


def module_name(path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part(module: str) -> str:
    """newsflow.db.store -> db; newsflow.config -> config; newsflow -> newsflow."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "newsflow"


def imports(path) -> list[tuple[str, bool, int]]:
    """(imported newsflow module, deferred into a function?, line) of a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    for node in tree.body:  # imports under a module-level `if`/`try` are module-level too
        if isinstance(node, ast.If | ast.Try):
            top |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("newsflow"):
            found.append((node.module, id(node) not in top, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) not in top, node.lineno) for a in node.names]
    return [f for f in found if f[0].split(".")[0] == "newsflow"]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer():
    parts = {part(module_name(p)) for p in SOURCES}
    assert parts == set(LAYERS), f"give these a layer: {parts ^ set(LAYERS)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    me = module_name(path)
    mine = part(me)
    wrong = []
    for target, deferred, line in imports(path):
        if (me, target, deferred) in PUBLIC_ENTRY_POINTS:
            continue
        theirs = part(target)
        if LAYERS[theirs] > LAYERS[mine]:
            wrong.append(f"line {line}: {me} ({mine}) imports {target} ({theirs}), a layer above")
        if deferred and mine not in DEFERRED_OK:
            wrong.append(f"line {line}: {me} defers its import of {target} into a function")
    assert not wrong, "\n".join(wrong)


SQL_CALL = re.compile(r"duckdb\.connect\(|\.execute\(|\.sql\(")


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if part(module_name(p)) != "db"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_sql_outside_the_database_layer(path):
    calls = [
        f"line {n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SQL_CALL.search(line)
    ]
    assert not calls, f"{path.relative_to(ROOT)} runs SQL itself; ask the db layer:\n" + "\n".join(
        calls
    )


def test_the_layer_checks_catch_an_upward_and_a_deferred_import(tmp_path):
    # The checks above can fail: a stage importing the database layer in a function breaks both.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from newsflow.db.store import Store\n", encoding="utf-8")
    (target, deferred, line), *_ = imports(bad)
    assert (target, deferred, line) == ("newsflow.db.store", True, 2)
    assert LAYERS[part(target)] > LAYERS["fetching"]
