"""The layering of docs/architecture.md, checked on the source itself (imports and string
constants, read with ast; nothing is imported or run):

- no import cycle inside imfed/;
- no role (imfed/node, imfed/management) imports the composition root (imfed/service.py and
  the development default built on it);
- no route module touches the database, nor imports a store: routes call handlers;
- the node's store (imfed/node/store/) is the bottom layer: it imports no handler, route,
  service, client or CLI module, and no HTTP error type (imfed/wire/errors.py, imfed/web.py):
  the rules that refuse a caller live in the handlers;
- handlers import no route; no role imports the CLI (imfed/cli/ is on top);
- in the node (and the node's CLI and admin API) SQL is run by the store alone: no
  ``execute`` outside imfed/node/store/ (and the XMPP gateway's own tables, xmpp/state.py);
- no federation path is spelled outside imfed/wire/ (paths.py owns them);
- the write lock is taken by a call (``storage.begin_write``), never spelled as SQL outside
  imfed/storage/__init__.py (the one place that knows what it is on SQLite).

Each rule is also run on a small made-up tree that breaks it, so the checks are seen to fail.
"""

from __future__ import annotations

import ast
import os

import pytest

from imfed.wire import paths

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "imfed")

COMPOSITION_ROOT = {"imfed.service", "imfed.devdefault", "imfed.tap"}
ROLES = ("imfed.node.", "imfed.management.")
ROUTE_MODULES = ("imfed.node.routes.", "imfed.management.routes")
STORES = ("imfed.storage", "imfed.node.store", "imfed.management.store")
DATABASE_CALLS = {"runInteraction", "runQuery", "runOperation", "execute", "executemany",
                  "run_sync", "read_now", "cursor", "run", "read"}


def read_tree(root: str = ROOT) -> dict[str, str]:
    """{module name: source} of every .py file under ``root``."""
    out = {}
    base = os.path.dirname(root)
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
                if module.endswith(".__init__"):
                    module = module[:-len(".__init__")]
                with open(path, encoding="utf-8") as f:
                    out[module] = f.read()
    return out


def _is_package(module: str, tree: dict) -> bool:
    return any(m.startswith(module + ".") for m in tree)


def imports(tree: dict[str, str]) -> dict[str, set[str]]:
    """{module: the modules of ``tree`` it imports}, at any level of the file (an import
    inside a function is an import too)."""
    graph = {}
    for module, source in tree.items():
        package = module if _is_package(module, tree) else module.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1])
                    base = base + "." + node.module if node.module else base
                else:
                    base = node.module
                found.add(base)
                found.update(base + "." + a.name for a in node.names
                             if base + "." + a.name in tree)
        graph[module] = {m for m in found if m in tree and m != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def roles_importing_root(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, i) for m, deps in graph.items() if m.startswith(ROLES)
                  for i in deps if i in COMPOSITION_ROOT)


def routes_touching_database(tree: dict[str, str], graph: dict[str, set[str]]
                             ) -> list[tuple[str, str]]:
    out = []
    for module, source in tree.items():
        if not module.startswith(ROUTE_MODULES):
            continue
        out += [(module, "imports " + i) for i in sorted(graph[module])
                if i in STORES or i.startswith(tuple(s + "." for s in STORES))]
        for node in ast.walk(ast.parse(source)):
            name = node.attr if isinstance(node, ast.Attribute) else \
                node.id if isinstance(node, ast.Name) else None
            if name in DATABASE_CALLS:
                out.append((module, "uses %s (line %d)" % (name, node.lineno)))
    return out


NODE_STORE = "imfed.node.store"
ABOVE_THE_STORE = ("imfed.node.handlers", "imfed.node.routes", "imfed.node.services",
                   "imfed.node.clients", "imfed.node.xmpp", "imfed.node.service",
                   "imfed.node.application", "imfed.node.directory", "imfed.cli")
HTTP_ERRORS = ("imfed.wire.errors", "imfed.web")


def _within(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def layering(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(module, what it must not import): the store imports nothing above it and no HTTP
    error; a handler imports no route; no role imports the CLI."""
    out = []
    for module, deps in graph.items():
        for i in sorted(deps):
            if _within(module, (NODE_STORE,)) and _within(i, ABOVE_THE_STORE + HTTP_ERRORS):
                out.append((module, i))
            elif _within(module, ("imfed.node.handlers",)) and \
                    _within(i, ("imfed.node.routes",)):
                out.append((module, i))
            elif module.startswith(ROLES) and _within(i, ("imfed.cli",)):
                out.append((module, i))
    return sorted(out)


SQL_CHECKED = ("imfed.node", "imfed.cli.node", "imfed.adminapi")
SQL_HOMES = ("imfed.node.store", "imfed.node.xmpp.state")


def sql_outside_the_store(tree: dict[str, str]) -> list[tuple[str, int]]:
    """(module, line) of every ``execute``/``executemany`` call in the node's modules (its
    CLI and the admin API too) outside its store."""
    out = []
    for module, source in tree.items():
        if not _within(module, SQL_CHECKED) or _within(module, SQL_HOMES):
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("execute", "executemany"):
                out.append((module, node.lineno))
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and \
                    isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


FEDERATION_PATHS = sorted({e.path for e in vars(paths).values()
                           if isinstance(e, paths.Endpoint) and "/" in e.path})


def path_strings(tree: dict[str, str]) -> list[tuple[str, int, str]]:
    """(module, line, string) of every string constant outside imfed/wire/ that spells a
    federation path (docstrings excepted: they may name what they describe)."""
    out = []
    for module, source in tree.items():
        if module == "imfed.wire" or module.startswith("imfed.wire."):
            continue
        parsed = ast.parse(source)
        docs = _docstrings(parsed)
        for node in ast.walk(parsed):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    id(node) not in docs:
                text = node.value
                if "/sns" in text or "restApi" in text or \
                        any(p in text for p in FEDERATION_PATHS):
                    out.append((module, node.lineno, text))
    return out


WRITE_LOCK_HOME = "imfed.storage"


def write_lock_spelled(tree: dict[str, str]) -> list[tuple[str, int]]:
    """(module, line) of every string outside imfed/storage/__init__.py that takes the write
    lock as SQL (docstrings excepted)."""
    out = []
    for module, source in tree.items():
        if module == WRITE_LOCK_HOME:
            continue
        parsed = ast.parse(source)
        docs = _docstrings(parsed)
        for node in ast.walk(parsed):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    id(node) not in docs and "BEGIN IMMEDIATE" in node.value.upper():
                out.append((module, node.lineno))
    return out


# -- the rules, on imfed/ --

TREE = read_tree()
GRAPH = imports(TREE)


def test_the_tree_is_read():
    assert "imfed.node.routes.federation" in TREE and "imfed.wire.paths" in TREE
    assert "imfed.node.handlers.messages" in GRAPH["imfed.node.routes.client"]


def test_no_import_cycle_inside_imfed():
    assert cycles(GRAPH) == []


def test_no_role_imports_the_composition_root():
    assert roles_importing_root(GRAPH) == []


def test_no_route_module_touches_the_database():
    assert routes_touching_database(TREE, GRAPH) == []


def test_each_layer_imports_only_below_it():
    assert layering(GRAPH) == []


def test_sql_is_run_by_the_store_alone():
    assert sql_outside_the_store(TREE) == []


def test_no_federation_path_outside_wire():
    assert path_strings(TREE) == []


def test_the_write_lock_is_a_call_not_sql():
    assert write_lock_spelled(TREE) == []


# -- the same rules see a broken tree --

BROKEN = {
    "imfed": "",
    "imfed.service": "from .node import service\n",
    "imfed.node": "",
    "imfed.node.service": "def f():\n    from ..service import make_service\n",
    "imfed.node.a": "from . import b\n",
    "imfed.node.b": "from .a import thing\n",
    "imfed.node.routes": "",
    "imfed.node.routes.client": (
        '"""Docstrings may say /sns/chat."""\n'
        "from ..store import messages\n"
        "async def send(db):\n"
        "    await db.runInteraction(None)\n"
        '    return "/sns/chat", "invite/grpreq?groupID="\n'),
    "imfed.node.store": "",
    "imfed.node.store.messages": ('from ...wire.errors import NotFound\n'
                                  'def f(cur):\n    cur.execute("begin immediate")\n'),
    "imfed.node.store.groups": "from ..handlers import groups\n",
    "imfed.node.handlers": "",
    "imfed.node.handlers.groups": ("from ..routes.client import send\n"
                                   "def f(cur):\n    cur.execute('SELECT 1')\n"),
    "imfed.wire": "",
    "imfed.wire.errors": "",
    "imfed.cli": "",
    "imfed.node.xmpp": "from ..cli import main\n",
}


def test_the_rules_fail_on_a_broken_tree():
    graph = imports(BROKEN)
    assert ["imfed.node.a", "imfed.node.b"] in cycles(graph)
    assert ["imfed.node.service", "imfed.service"] in cycles(graph)
    assert roles_importing_root(graph) == [("imfed.node.service", "imfed.service")]
    found = routes_touching_database(BROKEN, graph)
    assert ("imfed.node.routes.client", "imports imfed.node.store.messages") in found
    assert any("runInteraction" in why for _, why in found)
    assert [(m, s) for m, _, s in path_strings(BROKEN)] == [
        ("imfed.node.routes.client", "/sns/chat"),
        ("imfed.node.routes.client", "invite/grpreq?groupID=")]
    assert write_lock_spelled(BROKEN) == [("imfed.node.store.messages", 3)]
    assert sql_outside_the_store(BROKEN) == [("imfed.node.handlers.groups", 3)]
    assert layering(graph) == [
        ("imfed.node.handlers.groups", "imfed.node.routes.client"),
        ("imfed.node.store.groups", "imfed.node.handlers"),
        ("imfed.node.store.groups", "imfed.node.handlers.groups"),
        ("imfed.node.store.messages", "imfed.wire.errors"),
        ("imfed.node.xmpp", "imfed.cli")]


@pytest.mark.parametrize("rule", ["cycle", "root", "routes", "paths", "lock", "layers", "sql"])
def test_each_rule_names_what_breaks_it(rule):
    graph = imports(BROKEN)
    result = {"cycle": lambda: cycles(graph), "root": lambda: roles_importing_root(graph),
              "routes": lambda: routes_touching_database(BROKEN, graph),
              "paths": lambda: path_strings(BROKEN),
              "lock": lambda: write_lock_spelled(BROKEN),
              "layers": lambda: layering(graph),
              "sql": lambda: sql_outside_the_store(BROKEN)}[rule]()
    assert result, rule


def test_each_queued_kind_is_one_attrs_payload():
    """Issue #28: every call a node queues for another is built as its payload class
    (imfed/wire/queued.py), one a kind; enqueue is never handed a kind's name and a dict."""
    import typing

    import attrs

    from imfed.wire import queued

    classes = typing.get_args(queued.Queued)
    assert sorted(c.kind for c in classes) == sorted(paths.QUEUED)
    assert all(attrs.has(c) for c in classes)
    for module, source in TREE.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "enqueue":
                assert not any(isinstance(a, ast.Constant) and isinstance(a.value, str)
                               for a in node.args), (module, node.lineno)
