"""netsight's import graph: no circles, and no arrow back up the layers.

Every module under netsight/ is read with `ast` (nothing is imported) and every import statement
counts: at module level or inside a function, absolute or relative. `from .x import name` imports
`x`, and also the submodule `x.name` where there is one; importing `a.b.c` also runs the
`__init__` of the packages `a` and `a.b`, so it is an arrow to each of them as well (a folder
without one, a namespace package, runs nothing). The exception is the importing module's own
packages: Python has started them before the module itself (they are in `sys.modules`
already), so naming them runs nothing.
"""

from __future__ import annotations

import ast
from collections import deque
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "netsight"

# arrows the test forgives, each with the change that removes it
KNOWN: set[tuple[str, str]] = set()

# (modules under these, must never reach modules under these): data, models, train at the bottom; the
# operations several techniques share (ops) below the techniques; the techniques below the report, the
# suites and the CLI (they may use the report's pure helpers: tables, stats); the plotting helpers below
# every figure (the techniques' and the report's)
LAYERS = [
    (
        ("netsight.data", "netsight.models", "netsight.train"),
        (
            "netsight.ops",
            "netsight.techniques",
            "netsight.plotting",
            "netsight.report",
            "netsight.suites",
            "netsight.cli",
            "netsight.zf",
        ),
    ),
    (
        ("netsight.plotting", "netsight.style"),
        ("netsight.ops", "netsight.techniques", "netsight.report", "netsight.suites", "netsight.cli", "netsight.zf"),
    ),
    (
        ("netsight.ops",),
        (
            "netsight.techniques",
            "netsight.plotting",
            "netsight.zf",
            "netsight.cli",
            "netsight.suites",
            "netsight.report.html",
            "netsight.report.study",
        ),
    ),
    (
        ("netsight.techniques",),
        ("netsight.zf", "netsight.cli", "netsight.suites", "netsight.report.html", "netsight.report.study"),
    ),
    (("netsight.suites.backends",), ("netsight.suites.runner",)),
]

# module file names found in two folders, each with the change that removes it (none left)
SHARED_NAMES_KNOWN: set[str] = set()


def find_modules(root: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package) for every .py file under `root`."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (path, package)
    return modules


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports(
    name: str, source: str, modules: dict[str, tuple[Path, bool]], is_package: bool = False, top: str = "netsight"
) -> dict[str, int]:
    """The modules of `modules` that running `source` (the module `name`) imports -> the first
    line that does."""
    here = name if is_package else name.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        for t in [*_ancestors(target), target]:
            if t in modules and t != name and t not in _ancestors(name):
                found.setdefault(t, line)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == top or alias.name.startswith(top + "."):
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base != top and not base.startswith(top + "."):
                continue
            add(base, node.lineno)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    add(f"{base}.{alias.name}", node.lineno)
    return found


@lru_cache(maxsize=1)
def import_graph() -> dict[str, dict[str, int]]:
    modules = find_modules()
    graph = {}
    for name, (path, package) in modules.items():
        targets = imports(name, path.read_text(encoding="utf-8"), modules, package)
        graph[name] = {t: line for t, line in targets.items() if (name, t) not in KNOWN}
    return graph


def _path(graph: dict[str, dict[str, int]], path: list[str]) -> str:
    return path[0] + "".join(f" -(line {graph[a][b]})-> {b}" for a, b in pairwise(path))


def _shortest(graph: dict[str, dict[str, int]], start: str, goal, within=None) -> list[str] | None:
    """The shortest path from `start` (one step at least) to a node where goal(node) holds."""
    before: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        nexts = [n for n in sorted(graph[node]) if within is None or n in within]
        hits = [n for n in nexts if goal(n)]
        if hits:  # the most specific one: `a.b.c` rather than the package `a.b` it also runs
            path = [max(hits, key=len), node]
            while path[-1] != start:
                path.append(before[path[-1]])
            return path[::-1]
        for nxt in nexts:
            if nxt not in before and nxt != start:
                before[nxt] = node
                queue.append(nxt)
    return None


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's components of more than one module (or one that imports itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycles(graph: dict[str, dict[str, int]]) -> list[str]:
    """One readable circle per knot of modules that import each other."""
    out = []
    for component in strongly_connected(graph):
        members = set(component)
        circle = _shortest(graph, component[0], lambda n, first=component[0]: n == first, members)
        line = _path(graph, circle)
        if len(component) > len(circle) - 1:
            line += f"   (the knot also holds {', '.join(m for m in component if m not in circle)})"
        out.append(line)
    return out


def _under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def arrows_up(graph: dict[str, dict[str, int]]) -> list[str]:
    """For each rule, every module that reaches a module it must not, with the shortest path."""
    out = []
    for lower, upper in LAYERS:
        for name in sorted(n for n in graph if _under(n, lower)):
            path = _shortest(graph, name, lambda n, upper=upper: _under(n, upper))
            if path is not None:
                out.append(_path(graph, path))
    return out


def test_the_reader_sees_every_kind_of_import():
    modules = {
        n: (Path(n), p)
        for n, p in [
            ("pkg", True),
            ("pkg.a", True),
            ("pkg.a.deep", False),
            ("pkg.a.b", False),
            ("pkg.c", False),
            ("pkg.d", True),
            ("pkg.d.e", False),
            ("pkg.f", False),
        ]
    }
    source = (
        "import os\nfrom . import b\nfrom ..c import thing\n"
        "def later():\n    from ..d import e\n    import pkg.f\n    from pkg import a\n"
    )
    assert imports("pkg.a.deep", source, modules, top="pkg") == {
        "pkg.a.b": 2,
        "pkg.c": 3,
        "pkg.d": 5,
        "pkg.d.e": 5,
        "pkg.f": 6,
    }  # pkg, pkg.a: its own packages
    assert imports("pkg.a", "from .b import x\nfrom . import deep\n", modules, True, top="pkg") == {"pkg.a.b": 1, "pkg.a.deep": 2}
    assert imports("pkg.c", "from pkg.d.e import y\n", modules, top="pkg") == {"pkg.d": 1, "pkg.d.e": 1}


def test_the_checks_report_what_they_find():
    graph = {
        "netsight.data.x": {"netsight.fileio": 3},
        "netsight.fileio": {"netsight.report.html": 9},
        "netsight.report.html": {"netsight.data.x": 1},
        "netsight.zf": {},
    }
    assert cycles(graph) == [
        "netsight.data.x -(line 3)-> netsight.fileio -(line 9)-> netsight.report.html -(line 1)-> netsight.data.x"
    ]
    assert arrows_up(graph) == ["netsight.data.x -(line 3)-> netsight.fileio -(line 9)-> netsight.report.html"]


def test_the_graph_of_netsight_has_its_known_arrows():
    graph = import_graph()
    assert {"netsight.errors", "netsight.suites.runner"} <= set(graph["netsight.cli"])  # module level, inside a function
    assert "netsight.train" in graph["netsight"] and "netsight.train.loop" in graph["netsight.train"]


def test_no_module_imports_itself_round_a_circle():
    found = cycles(import_graph())
    assert not found, "import circles:\n" + "\n".join(found)


def test_no_arrow_back_up_the_layers():
    found = arrows_up(import_graph())
    assert not found, "imports against the layers:\n" + "\n".join(found)


def shared_names(root: Path = PACKAGE) -> dict[str, list[str]]:
    """Module file name -> its folders, for every name (other than __init__.py) in two folders or more."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        if path.name != "__init__.py":
            found.setdefault(path.name, []).append(str(path.parent.relative_to(root.parent)))
    return {name: folders for name, folders in found.items() if len(folders) > 1}


def test_the_name_check_reports_what_it_finds(tmp_path):
    for rel in ["pkg/__init__.py", "pkg/a/__init__.py", "pkg/a/x.py", "pkg/b/x.py", "pkg/b/y.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert shared_names(tmp_path / "pkg") == {"x.py": ["pkg/a", "pkg/b"]}


def test_no_two_modules_share_a_name_across_folders():
    found = {name: folders for name, folders in shared_names().items() if name not in SHARED_NAMES_KNOWN}
    assert not found, "module names in two folders (one technique, one module; ops named by what they do):\n" + "\n".join(
        f"{name}: {', '.join(folders)}" for name, folders in sorted(found.items())
    )
    stale = SHARED_NAMES_KNOWN - set(shared_names())
    assert not stale, f"SHARED_NAMES_KNOWN lists names no longer shared: {sorted(stale)}"


# test modules that still import another test module, each with the helper to move into tests/helpers.py
TEST_IMPORTS_KNOWN = {
    ("tests.test_cli_hardening", "tests.train.test_loop"),  # _interrupt_after
    ("tests.train.test_damaged_run_dir", "tests.train.test_loop"),  # _interrupt_after
    ("tests.train.test_fleet", "tests.train.test_loop"),  # _interrupt_after
    ("tests.train.test_hardening", "tests.train.test_loop"),  # _interrupt_after
    ("tests.suites.test_ray_backend", "tests.suites.test_runner"),  # SUITE
    ("tests.report.test_explore_browser", "tests.report.test_browser"),  # the Chromium helpers
    ("tests.report.test_explore_recurrent_browser", "tests.report.test_browser"),
    ("tests.report.test_explore_recurrent_browser", "tests.report.test_explore_browser"),
    ("tests.report.test_microscope_site", "tests.report.test_browser"),  # the Chromium helpers
}


def test_test_modules_share_helpers_through_tests_helpers_not_each_other():
    tests = Path(__file__).resolve().parent
    modules = find_modules(tests)
    found = set()
    for name, (path, package) in modules.items():
        for target in imports(name, path.read_text(), modules, package, top="tests"):
            if target.rpartition(".")[2].startswith("test_"):
                found.add((name, target))
    assert not found - TEST_IMPORTS_KNOWN, f"test modules importing test modules: {sorted(found - TEST_IMPORTS_KNOWN)}"
    assert not TEST_IMPORTS_KNOWN - found, (
        f"TEST_IMPORTS_KNOWN lists imports no longer made: {sorted(TEST_IMPORTS_KNOWN - found)}"
    )
