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


def modules() -> dict[str, set[str]]:
    """Every module of the package -> the `operators` modules it imports (anywhere in its code)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(("operators", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("operators.")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("operators."):
                imported.add(node.module)
        found[name] = imported
    return found


ALLOWED = {"core": {"core"}, "runtime": {"core", "runtime"}}
IMPORTS = modules()


@pytest.mark.parametrize("module", sorted(m for m in IMPORTS if layer(m) != "tool"))
def test_imports_follow_the_layers(module: str) -> None:
    mine = layer(module)
    allowed = ALLOWED.get(mine, {"core", "runtime", mine})
    wrong = sorted(m for m in IMPORTS[module] if layer(m) not in allowed)
    assert not wrong, f"{module} ({mine}) imports {wrong}"
