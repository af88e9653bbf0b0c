"""A pure package stays pure, and no proxy module imports itself in a circle (issue 10, "Edges").

The translation and protocol layers hold no I/O, so importing them must not
load Trio, sockets, the server or the metrics library: a tool or a test that
only translates messages should not pay for (or be able to reach) the I/O
stack. And import cycles are what let such dependencies creep back in
unnoticed, so every edge between proxy modules is checked, including imports
inside functions and under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "proxy"

# What a pure import must not load: the event loop, sockets, TLS, the
# WebSocket stacks, the server and the metrics library.
IMPURE = ("trio", "trio_websocket", "wsproto", "socket", "ssl", "selectors", "prometheus_client", "proxy.server")


def modules_loaded_by(statement: str) -> list[str]:
    """Run `statement` in a fresh interpreter; the names in its sys.modules afterwards."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=PACKAGE_DIR.parent, check=True
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "statement",
    [
        "import proxy.translate",
        "import proxy.protocol, proxy.protocol.deepgram, proxy.protocol.openai, proxy.protocol.wire",
        "import proxy.redact, proxy.logfields, proxy.counters",
    ],
)
def test_pure_layers_import_no_io(statement):
    loaded = modules_loaded_by(statement)
    leaked = sorted(name for name in loaded if name.split(".")[0] in IMPURE or name in IMPURE)
    assert not leaked, f"{statement!r} loaded {leaked}"


def test_package_still_re_exports_its_public_names():
    loaded = modules_loaded_by("from proxy import Config, ConfigError, ProxyServer, load_config")
    assert "proxy.server" in loaded and "proxy.config" in loaded


# ------------------------------------------------------------- import cycles


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """proxy module -> the proxy modules it names in any import statement."""
    files = {module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                if node.level:
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module or ""
                # `from . import otel` names a module; `from .logs import FIELDS` names logs.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]  # `import proxy.x.y` as far as it resolves
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles_among_proxy_modules():
    graph = import_graph()
    assert "proxy.server" in graph and graph["proxy.server"], "the graph found the package"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    """The checker itself: a cycle through a function-level import counts."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_the_leaf_modules_stay_leaves():
    """What breaks the logs<->otel and metrics<->server cycles must not grow edges back into the package."""
    graph = import_graph()
    assert graph["proxy.redact"] == set()
    assert graph["proxy.counters"] == set()
    assert graph["proxy.logfields"] <= {"proxy.redact"}
    assert "proxy.logs" not in graph["proxy.otel"] and "proxy.server" not in graph["proxy.counters"]
    assert "proxy.metrics" not in graph["proxy.server"]
