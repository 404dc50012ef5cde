"""The house keeps its shape: read from the source (with `ast`), not from a running process.

- no module imports another package's private names (`from X import _name`), nor a
  third-party library's internals;
- the plugin reaches the core only through `mockserver`'s public API;
- the package has no import cycle, and each folder imports only what README's "The house"
  says it may: the core, contract/, journal/ and export/ reach no web framework;
- every module has its test module, and README's Layout names every module.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import mockserver

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("mockserver", "pytest_plugin")
CHECKED = (*FIRST_PARTY, "contract_tests", "tests", "benchmarks")
WEB_FRAMEWORKS = {"starlette", "uvicorn", "httptools", "h11", "fastapi", "uvloop"}
TOP_LEVEL_ONLY = {"httpx", "respx", "responses"}
"""Libraries whose top level lists their whole API (`__all__`): anything imported from
their submodules is an internal that may change in any release."""


@dataclass(frozen=True)
class Import:
    source: Path
    line: int
    module: str
    """The imported module, absolute (`from .x import y` in mockserver/a.py: mockserver.x)."""
    names: tuple[str, ...]
    """The names taken from it (`from m import a, b`), empty for `import m`."""
    type_only: bool
    """Under `if TYPE_CHECKING:`: never executed."""

    @property
    def where(self) -> str:
        return f"{self.source.relative_to(ROOT)}:{self.line}"


def _python_files(top: str) -> list[Path]:
    return sorted(p for p in (ROOT / top).rglob("*.py") if "node_modules" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] in ("tests", "benchmarks"):  # run as scripts: their folder is on sys.path
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, type_only
        inner = type_only or (isinstance(child, ast.If) and _is_type_checking(child))
        yield from _walk(child, inner)


@cache
def imports_of(path: Path) -> tuple[Import, ...]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node, type_only in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, a.name, (), type_only) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([module] if module else [])])
            names = tuple(a.name for a in node.names)
            found.append(Import(path, node.lineno, module, names, type_only))
    return tuple(found)


@cache
def first_party_modules() -> dict[str, Path]:
    return {_module_name(p): p for top in FIRST_PARTY for p in _python_files(top)}


def _targets(imp: Import) -> set[str]:
    """The first-party modules an import runs (a name that is a submodule counts as one)."""
    modules = first_party_modules()
    found = {f"{imp.module}.{n}" for n in imp.names if f"{imp.module}.{n}" in modules}
    if imp.module in modules:
        found.add(imp.module)
    return found


@cache
def import_graph() -> dict[str, set[str]]:
    """module -> the first-party modules it imports (at import time or later in a function;
    `TYPE_CHECKING` imports left out), implicit parent packages left out."""
    return {
        name: {t for imp in imports_of(path) if not imp.type_only for t in _targets(imp)} - {name}
        for name, path in first_party_modules().items()
    }


def _folder_of_module(module: str) -> Path | None:
    """The folder a module lives in (a package's own folder for its __init__)."""
    for base in (ROOT, ROOT / "tests", ROOT / "benchmarks"):
        stem = base.joinpath(*module.split("."))
        if (stem / "__init__.py").is_file():
            return stem
        if stem.with_suffix(".py").is_file():
            return stem.parent
    return None


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in sys.stdlib_module_names and _folder_of_module(module) is None


def every_import() -> Iterator[Import]:
    for top in CHECKED:
        for path in _python_files(top):
            yield from imports_of(path)


def test_no_module_imports_another_packages_private_names() -> None:
    wrong = []
    for imp in every_import():
        folder = _folder_of_module(imp.module)
        if folder is None or folder == imp.source.parent:
            continue  # a library, or the same package: its own business
        parts = [*imp.module.split("."), *imp.names]
        if any(_private(part) for part in parts):
            wrong.append(f"{imp.where}: from {imp.module} import {', '.join(imp.names)}")
    assert not wrong, (
        "private names used across packages (make the name public in its module, or "
        "test it through what uses it):\n" + "\n".join(wrong)
    )


def test_no_module_imports_a_librarys_internals() -> None:
    wrong = []
    for imp in every_import():
        if not _third_party(imp.module):
            continue
        parts = [*imp.module.split("."), *imp.names]
        top = imp.module.split(".")[0]
        if any(_private(p) for p in parts) or (top in TOP_LEVEL_ONLY and imp.module != top):
            wrong.append(f"{imp.where}: {imp.module} {', '.join(imp.names)}")
    assert not wrong, "library internals imported (use the library's public API):\n" + "\n".join(
        wrong
    )


def test_the_plugin_uses_only_the_public_api() -> None:
    wrong = []
    for path in _python_files("pytest_plugin"):
        for imp in imports_of(path):
            if imp.module.split(".")[0] != "mockserver":
                continue
            if imp.module != "mockserver":
                wrong.append(f"{imp.where}: from {imp.module} (import from mockserver itself)")
            wrong += [
                f"{imp.where}: {n} is not in mockserver.__all__"
                for n in imp.names
                if n not in mockserver.__all__
            ]
    assert not wrong, "\n".join(wrong)


def _cycle() -> list[str] | None:
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle() -> None:
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    monkeypatch.setattr(sys.modules[__name__], "import_graph", lambda: graph)
    assert _cycle() == ["a", "b", "c", "a"]


def reached(module: str) -> tuple[set[str], set[str]]:
    """(first-party modules, third-party top-level packages) `module` runs, transitively."""
    graph, modules = import_graph(), first_party_modules()
    seen, todo, libraries = {module}, [module], set()
    while todo:
        current = todo.pop()
        for imp in imports_of(modules[current]):
            if not imp.type_only and _third_party(imp.module):
                libraries.add(imp.module.split(".")[0])
        for nxt in graph[current] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen, libraries


def _core_modules() -> list[str]:
    """The core: the top-level modules (not the package's door, `__init__`, nor
    `__main__`), and everything in contract/, journal/ and export/."""
    core = []
    for name, path in first_party_modules().items():
        folder = path.parent.relative_to(ROOT).parts
        top = folder == ("mockserver",) and path.stem not in ("__init__", "__main__")
        if top or folder[:2] in {("mockserver", f) for f in ("contract", "journal", "export")}:
            core.append(name)
    return sorted(core)


def test_the_core_reaches_no_web_framework() -> None:
    core = _core_modules()
    assert {"mockserver.endpoint", "mockserver.contract.validation"} <= set(core)
    wrong = {}
    for module in core:
        modules, libraries = reached(module)
        upward = sorted(m for m in modules if m.split(".")[1:2] in (["web"], ["serve"]))
        if libraries & WEB_FRAMEWORKS or upward:
            wrong[module] = sorted(libraries & WEB_FRAMEWORKS) + upward
    assert not wrong, wrong


def test_the_contract_imports_only_the_contract_and_the_models() -> None:
    allowed = ("mockserver.contract", "mockserver.model", "mockserver.violations")
    allowed += ("mockserver.errors", "mockserver.batch")  # batch: the walk, beside the models
    for module in first_party_modules():
        if module.startswith("mockserver.contract."):
            wrong = {m for m in import_graph()[module] if not m.startswith(allowed)}
            assert not wrong, f"{module} imports {sorted(wrong)}"


FOLDER_MAY_NOT_IMPORT = {
    "mockserver.journal": ("mockserver.export", "mockserver.web", "mockserver.serve"),
    "mockserver.export": ("mockserver.web", "mockserver.serve"),
    "mockserver.web": ("mockserver.serve",),
    "mockserver": ("mockserver.web", "mockserver.serve", "mockserver.export"),
}
"""What README's "The house" forbids each folder (the top-level core: `mockserver`, not
its `__init__`, which gathers the public API from everywhere)."""


def test_each_folder_imports_only_what_the_house_allows() -> None:
    wrong = []
    for module, targets in import_graph().items():
        folder = module.rpartition(".")[0] if module.count(".") > 1 else "mockserver"
        if module in ("mockserver", "mockserver.__main__") or not module.startswith("mockserver"):
            continue
        forbidden = FOLDER_MAY_NOT_IMPORT.get(folder, ())
        wrong += [f"{module} -> {t}" for t in sorted(targets) if t.startswith(forbidden)]
    assert not wrong, "\n".join(wrong)


# Tests mirror the modules ------------------------------------------------------------

TESTED_IN = {
    "mockserver/__main__.py": "test_cli.py",
    "mockserver/endpoint.py": "test_app.py",
    "mockserver/fault_plan.py": "test_faults.py",
    "mockserver/model.py": "test_journal.py",
    "mockserver/problem.py": "test_errors.py",
    "mockserver/timing.py": "test_faults.py",
    "mockserver/violations.py": "test_validation.py",
    "mockserver/contract/flatten.py": "test_journal.py",
    "mockserver/contract/history.py": "test_journal.py",
    "mockserver/export/junit.py": "test_check.py",
    "mockserver/export/ndjson.py": "test_export.py",
    "mockserver/export/schema.py": "test_export.py",
    "mockserver/export/stream.py": "test_export.py",
    "mockserver/export/check.py": "test_check.py",
    "mockserver/journal/base.py": "test_journal.py",
    "mockserver/journal/filters.py": "test_event_filters.py",
    "mockserver/journal/memory.py": "test_journal.py",
    "mockserver/journal/sqlite.py": "test_journal.py",
    "mockserver/journal/sqlite_schema.py": "test_journal.py",
    "mockserver/journal/rows.py": "test_journal.py",
    "mockserver/journal/datafile_rows.py": "test_shared_datafiles.py",
    "mockserver/journal/group.py": "test_group_commit.py",
    "mockserver/journal/opening.py": "test_journal_postgres.py",
    "mockserver/journal/postgres.py": "test_journal_postgres.py",
    "mockserver/journal/pg_writer.py": "test_journal_postgres.py",
    "mockserver/journal/pg_schema.py": "test_journal_postgres.py",
    "mockserver/journal/pg_url.py": "test_journal_postgres.py",
    "mockserver/journal/results.py": "test_results.py",
    "mockserver/serve/admin_token.py": "test_serve_safety.py",
    "mockserver/serve/check_cli.py": "test_check.py",
    "mockserver/serve/events_cli.py": "test_cli.py",
    "mockserver/serve/remote.py": "test_cli.py",
    "mockserver/serve/replay.py": "test_replay.py",
    "mockserver/serve/replay_cli.py": "test_replay.py",
    "mockserver/serve/results_cli.py": "test_results_api.py",
    "mockserver/serve/serve_cli.py": "test_serve_safety.py",
    "mockserver/serve/server.py": "test_app.py",
    "mockserver/serve/transfer_cli.py": "test_export.py",
    "mockserver/serve/watch.py": "test_datafile_server.py",
    "mockserver/web/bodies.py": "test_hostile_admin.py",
    "mockserver/web/guard.py": "test_admin_surface.py",
    "mockserver/web/openapi.py": "test_admin_routes.py",
    "mockserver/web/wire.py": "test_fault_doors.py",
    "mockserver/web/admin/answers.py": "test_read_bounds.py",
    "mockserver/web/admin/datafiles.py": "test_datafile_server.py",
    "mockserver/web/admin/export.py": "test_export.py",
    "mockserver/web/admin/faults.py": "test_fault_doors.py",
    "mockserver/web/admin/http.py": "test_admin_routes.py",
    "mockserver/web/admin/journal.py": "test_admin_routes.py",
    "mockserver/web/admin/results.py": "test_results_api.py",
    "mockserver/web/admin/routes.py": "test_admin_routes.py",
    "pytest_plugin/dispatcher.py": "test_sdk.py",
    "pytest_plugin/handle.py": "test_plugin.py",
    "pytest_plugin/matching.py": "test_plugin.py",
    "pytest_plugin/options.py": "test_plugin.py",
    "pytest_plugin/results_check.py": "test_plugin_results.py",
    "pytest_plugin/routes.py": "test_plugin.py",
    "pytest_plugin/requests_routes.py": "test_plugin_requests.py",
    "pytest_plugin/timeline.py": "test_fault_doors.py",
    "pytest_plugin/transport.py": "test_fault_doors.py",
}
"""Where a module's behaviour is tested, when not in tests/test_<its name>.py."""


def _package_modules() -> list[str]:
    return [
        str(p.relative_to(ROOT))
        for top in FIRST_PARTY
        for p in _python_files(top)
        if p.name != "__init__.py"
    ]


def test_every_module_has_its_test_module() -> None:
    tests = ROOT / "tests"
    missing = []
    for module in _package_modules():
        test = TESTED_IN.get(module, f"test_{Path(module).stem}.py")
        if not (tests / test).is_file():
            missing.append(f"{module}: tests/{test}")
    assert not missing, (
        "modules without their test module (write tests/test_<name>.py, or say in "
        "tests/test_house.py TESTED_IN which test module covers it):\n" + "\n".join(missing)
    )
    stale = sorted(set(TESTED_IN) - set(_package_modules()))
    assert not stale, f"TESTED_IN names modules that are gone: {stale}"


def _layout() -> dict[str, set[str]]:
    """README's Layout block: folder -> the module files it names."""
    text = (ROOT / "README.md").read_text()
    block = text.split("\n## Layout\n", 1)[1].split("```", 2)[1]
    folders: list[tuple[int, str]] = []
    named: dict[str, set[str]] = {}
    for line in block.splitlines():
        head = re.match(r"( *)([\w]+/)\s", line + " ")
        if head:
            indent = len(head.group(1))
            folders = [(i, f) for i, f in folders if i < indent] + [(indent, head.group(2))]
        if folders:
            folder = "".join(f for _, f in folders)
            named.setdefault(folder, set()).update(re.findall(r"\b(\w+\.py)\b", line))
    return named


def test_readme_layout_names_every_module() -> None:
    named = _layout()
    missing = []
    for module in _package_modules():
        folder, _, name = module.rpartition("/")
        if name not in named.get(folder + "/", set()):
            missing.append(module)
    assert not missing, f"README's Layout leaves out: {missing}"
    listed = {f + n for f, names in named.items() for n in names if f.split("/")[0] in FIRST_PARTY}
    files = {str(p.relative_to(ROOT)) for top in FIRST_PARTY for p in _python_files(top)}
    assert listed <= files, f"Layout names no such module: {sorted(listed - files)}"


def test_only_web_and_serve_import_a_web_framework() -> None:
    wrong = [
        f"{imp.where}: {imp.module}"
        for top in FIRST_PARTY
        for path in _python_files(top)
        for imp in imports_of(path)
        if imp.module.split(".")[0] in WEB_FRAMEWORKS
        and path.parent.relative_to(ROOT).parts[:2]
        not in {("mockserver", "web"), ("mockserver", "serve")}
    ]
    assert not wrong, "\n".join(wrong)
