"""The layers of DESIGN.md, read from the imports of every module: the pure cores import no shell; the
shells (agent, controller, the ingress and DNS servers) import `runtime` and the cores, never each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operators"
CORES = ("kube", "proxy", "netpol", "nft", "gateway", "cni")
SHELL_MODULES = {  # the shell parts of the two packages that hold a core too (models, renderers)
    "ingress": ("cli", "controller", "gateway_status", "nginx", "operator", "status"),
    "dns": ("cli", "watch"),
}
TOOLS = ("devcluster", "kind", "conformance", "cli", "offline_cli", "cli_errors", "__init__")


def layer(module: str) -> str:
    """core, runtime, a shell's name, or tool (the development commands, outside the layers)."""
    parts = module.split(".")[1:]
    top = parts[0] if parts else "__init__"
    if top in TOOLS:
        return "tool"
    if top == "runtime":
        return "runtime"
    if top in ("agent", "controller"):
        return top
    if top in SHELL_MODULES:
        return top if len(parts) > 1 and parts[1] in SHELL_MODULES[top] else "core"
    assert top in CORES, f"{module}: a package the layers do not name"
    return "core"


def trees() -> dict[str, ast.Module]:
    """Every module of the package, parsed once."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(("operators", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text())
    return found


def modules() -> dict[str, set[str]]:
    """Every module of the package -> the `operators` modules it imports (anywhere in its code)."""
    found = {}
    for name, tree in TREES.items():
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("operators.")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("operators."):
                imported.add(node.module)
        found[name] = imported
    return found


TREES = trees()
ALLOWED = {"core": {"core"}, "runtime": {"core", "runtime"}}
IMPORTS = modules()


@pytest.mark.parametrize("module", sorted(m for m in IMPORTS if layer(m) != "tool"))
def test_imports_follow_the_layers(module: str) -> None:
    mine = layer(module)
    allowed = ALLOWED.get(mine, {"core", "runtime", mine})
    wrong = sorted(m for m in IMPORTS[module] if layer(m) not in allowed)
    assert not wrong, f"{module} ({mine}) imports {wrong}"


def top_level_imports() -> dict[str, set[str]]:
    """Module -> the `operators` modules it imports when it is imported (not those imported inside a
    function, nor under `if TYPE_CHECKING`)."""
    names = set(TREES)
    graph: dict[str, set[str]] = {}
    for name in names:
        edges: set[str] = set()
        todo = list(TREES[name].body)
        while todo:
            node = todo.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.If | ast.Try):
                todo += [*node.body, *getattr(node, "orelse", []), *getattr(node, "handlers", [])]
            elif isinstance(node, ast.ExceptHandler):
                todo += node.body
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in names}
            elif isinstance(node, ast.ImportFrom) and node.module in names:
                edges |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module
                          for a in node.names}
        graph[name] = edges - {name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle, as the modules along it ([] when there is none)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_no_import_cycles() -> None:
    assert cycle(top_level_imports()) == []


def test_the_cycle_check_finds_one() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
