"""The package's layers, held by its imports: no cycles, and each layer reaching only downwards.

Every import counts, also those inside functions and under TYPE_CHECKING: a cycle hidden in a
function is still a cycle in the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import conductor

ROOT = Path(conductor.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py") if "migrations" not in p.parts}


def _imports(path: Path, name: str) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        # A module inside a package reaches that package's __init__ whenever Python loads it:
        # `from conductor.worker import protocol` depends on the submodule, not on the package.
        graph[name] = {
            target
            for target in _imports(path, name)
            if target in modules and target != name and not name.startswith(target + ".")
        }
    return graph


def _external(name: str) -> set[str]:
    path = _modules()[name]
    return {target.split(".")[0] for target in _imports(path, name)}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_domain_is_pure() -> None:
    graph = _graph()
    for name in graph:
        if name.startswith("conductor.domain"):
            inside = {t for t in graph[name] if not t.startswith("conductor.domain") and t != "conductor.errors"}
            assert not inside, f"{name} imports {inside}"
            assert not _external(name) & {"sqlalchemy", "psycopg", "sqlite3", "fastapi", "httpx", "socket", "subprocess"}


def test_only_the_store_speaks_sql() -> None:
    for name in _modules():
        if name == "conductor.store" or name.startswith("conductor.store."):
            continue
        assert not _external(name) & {"sqlalchemy", "psycopg", "sqlite3", "alembic"}, name


def test_services_know_no_transport_and_the_cli_no_server() -> None:
    graph = _graph()
    for name in graph:
        if name.startswith("conductor.services"):
            assert not {t for t in graph[name] if t.startswith(("conductor.api", "conductor.commands", "conductor.cli"))}, name
            assert not _external(name) & {"fastapi", "starlette", "uvicorn"}, name
        if name.startswith("conductor.cli"):
            server = {t for t in graph[name] if t.startswith(("conductor.api", "conductor.store", "conductor.services"))}
            assert not server, f"{name} imports {server}"


def test_every_error_has_one_root() -> None:
    """`except ConductorError` catches every error the package raises on purpose. The launcher
    is the one exception: it runs stdlib-only, outside the package (worker/launcher)."""
    import importlib
    import inspect

    from conductor.errors import ConductorError

    strays = []
    for name in sorted(_modules()):
        if name.endswith(("launcher", "__main__")):
            continue
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException) and not issubclass(cls, ConductorError):
                strays.append(f"{name}.{cls.__name__}")
    assert strays == []
