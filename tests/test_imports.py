"""The package's import graph: no cycles anywhere in kiosk/ and hardware/, and hardware/ never imports kiosk/.

Built statically with `ast` from every module's imports, top-level AND inside functions (a lazy import
still ties two modules together: `kiosk/app/tour.py` ↔ `kiosk/cli/run.py` was a cycle only through a
function-level import, which importing each module in turn never catches). Imports under
`if TYPE_CHECKING:` are left out: they never run. A package's `__init__` is not counted as imported by
its submodules (Python runs it first, but re-exporting submodules from it is the usual, safe pattern).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kiosk", "hardware")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module → the modules of kiosk/ and hardware/ it imports (anywhere in its code)."""
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: `from . import x` / `from ..y import z`
                    anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                wanted = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in wanted:
                while target and target not in files:  # `import a.b.c` of a non-module name: its module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycles():
    graph = import_graph()
    assert "kiosk.cli.run" in graph and "hardware.readers.registry" in graph  # the walk found the package
    problems = [" ↔ ".join(component) for component in cycles(graph)]
    assert not problems, "import cycles (break them with a module both sides import):\n" + "\n".join(problems)


def test_hardware_imports_nothing_from_kiosk():
    graph = import_graph()
    leaks = sorted(f"{module} imports {target}" for module, targets in graph.items() if module.startswith("hardware")
                   for target in targets if target.split(".")[0] == "kiosk")
    assert not leaks, "\n".join(leaks)


def test_the_reader_contract_imports_no_back_end():
    graph = import_graph()
    assert graph["hardware.readers.contract"] == set()  # stdlib only
    assert graph["hardware.readers.registry"] == {"hardware.readers.contract"}  # back-ends by name, lazily


def test_the_checker_sees_function_level_imports_and_cycles():
    """The graph builder itself: a lazy import inside a function counts; TYPE_CHECKING imports do not."""
    tree = ast.parse("import os\nif TYPE_CHECKING:\n    import a\ndef f():\n    from b import c\n")
    assert [getattr(n, "module", None) or n.names[0].name for n in _runtime_imports(tree)] == ["os", "b"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
