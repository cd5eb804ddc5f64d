"""The layout holds: imports flow one way, nothing in production imports a
simulator or the dev stack, and the wheel ships only the server and the
adapters. docs/architecture.md describes the same rules.

The walk reads the ``ast`` of every module, so an import hidden inside a
function counts exactly like one at the top.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("paycore", "channels", "simulators", "devstack")

#: paycore's sub-packages, lowest first: a module may import its own package or a lower layer, never a higher
#: one, and never a sibling of the same rank (outbox and ops know nothing of each other)
LAYERS = {
    "paycore": 0,            # config, errors, logs, metrics, tasks, runtime, textfmt
    "paycore.storage": 1,    # the pool and migrations
    "paycore.merchants": 2,  # merchants, authentication, one-code codes
    "paycore.core": 3,       # models and state machine, engine, journal, recovery, routing, breaker
    "paycore.outbox": 4,     # relay, audit, settlement consumer
    "paycore.ops": 4,        # reconciliation, webhooks
    "paycore.http": 5,       # the HTTP application
    "paycore.cli": 6,        # every command
}


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def imports_of(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports, anywhere in its body."""
    out: set[str] = set()
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and
                   getattr(block.test, "id", getattr(block.test, "attr", "")) == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}   # annotations only: never executed
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:   # `import a.b.c` of a non-module attribute: its module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def top(name: str) -> str:
    return name.split(".")[0]


def layer(name: str) -> str:
    parts = name.split(".")
    if len(parts) >= 2 and ".".join(parts[:2]) in LAYERS:
        return ".".join(parts[:2])
    return "paycore"


def test_the_walk_sees_the_whole_tree():
    assert {"paycore.http.app", "paycore.core.engine", "channels.registry", "simulators.kit",
            "devstack.stack"} <= set(MODULES)
    assert "paycore.core.engine" in GRAPH["paycore.http.app"]
    assert len(MODULES) > 100


def test_no_import_cycle():
    """Tarjan's strongly connected components over the module graph: every one must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


def test_channels_never_import_paycore_simulators_or_the_dev_stack():
    bad = {(m, t) for m, ts in GRAPH.items() if top(m) == "channels" for t in ts
           if top(t) in ("paycore", "simulators", "devstack")}
    assert bad == set()


def test_the_server_never_imports_a_simulator_or_the_dev_stack():
    bad = {(m, t) for m, ts in GRAPH.items() if top(m) == "paycore" for t in ts if top(t) in ("simulators", "devstack")}
    assert bad == set()


def test_simulators_never_import_paycore_or_the_dev_stack():
    bad = {(m, t) for m, ts in GRAPH.items() if top(m) == "simulators" for t in ts if top(t) in ("paycore", "devstack")}
    assert bad == set()


def test_paycore_imports_flow_down_the_layers():
    bad = []
    for m, ts in GRAPH.items():
        if top(m) != "paycore":
            continue
        for t in ts:
            if top(t) != "paycore" or layer(t) == layer(m):
                continue
            if LAYERS[layer(t)] >= LAYERS[layer(m)]:
                bad.append(f"{m} -> {t}")
    assert bad == []


def test_no_module_level_collectors_or_deferred_imports_in_production():
    """Prometheus collectors are built by Metrics() at start-up; imports sit at the top of each module."""
    deferred, collectors = [], []
    for name, path in MODULES.items():
        if top(name) not in ("paycore", "channels"):
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                fn = node.value.func
                if isinstance(fn, ast.Name) and fn.id in ("Counter", "Gauge", "Histogram", "Summary"):
                    collectors.append(name)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        mods = [a.name for a in inner.names] if isinstance(inner, ast.Import) else [inner.module]
                        if any(m and top(m) in PACKAGES for m in mods):
                            deferred.append(f"{name}:{inner.lineno}")
    assert collectors == [] and deferred == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # the build backend of pyproject.toml, as `pip wheel` or any builder runs it (setuptools and wheel are test extras)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, timeout=300, cwd=out)
    (found,) = out.glob("paycore-*.whl")
    return found


def test_the_wheel_ships_the_server_and_adapters_only(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("paycore-")}
    assert tops == {"paycore", "channels"}
    assert not [n for n in names if "simulator" in n or "devstack" in n or "devkeys" in n or n.endswith("kit.py")]
    # what the server needs at run time is in it
    for needed in ("paycore/http/app.py", "paycore/http/static/openapi.json", "paycore/storage/migrations/001_init.sql",
                   "channels/registry.py", "channels/wechatpay/adapter.py", "paycore/storage/migrations/007_console.sql",
                   "paycore/http/templates/console/base.html", "paycore/http/static/console/console.css"):
        assert needed in names
