"""The API resources a component's code can touch, read from its source (no cluster needed).

A component is its command's module and every `operators` module that it imports, directly or not. In
those modules a resource counts as used when
- its plural name is a string in the code (`kopf.index("v1", "services")`, `Resource("v1", "nodes")`,
  `get_cluster_custom_object(GROUP, VERSION, "clusterkopfpeerings", ...)`); docstrings do not count;
- a kubernetes client method names it (`read_namespaced_config_map`: configmaps,
  `patch_namespaced_service_status`: services/status);
- a custom-object `..._status` method is called with its plural (`dnsconfigs/status`);
- knet's client is given a path `api_path(api, plural, ..., subresource="status")` (`plural/status`).
This over-counts (a string may name a resource for another reason), never under-counts a call spelled in
one of these ways, so a grant that none of them explains is one the component cannot be using.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

_CLIENT_CALL = re.compile(r"(?:read|list|watch|create|patch|replace|delete)_(?:namespaced_|cluster_)?"
                          r"([a-z_]+?)(_status)?(?:_for_all_namespaces)?$")
_PLURAL = re.compile(r"[a-z][a-z0-9]*")


def _plural(snake: str) -> str:
    """`config_map` -> configmaps, `ingress` -> ingresses (how the client's method names spell kinds)."""
    word = snake.replace("_", "")
    return word + ("es" if word.endswith("s") else "s")


ROOT = Path(__file__).resolve().parents[3]


def _module_path(name: str) -> Path | None:
    """The source of module `name`, None when it is not one (a function or class imported by name)."""
    base = ROOT.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def closure(entry: str) -> set[str]:
    """The `operators` modules `entry` imports, at any depth and from anywhere in a module's code."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("operators")]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("operators"):
                todo.append(node.module)
                todo += [f"{node.module}.{a.name}" for a in node.names]  # `from package import module`
    return seen


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and (body := node.body) and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)}


def _constants(tree: ast.Module) -> dict[str, str]:
    """The module's top-level names bound to strings (`PLURAL = "x"`, `GROUP, PLURAL = "g", "x"`)."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            pairs = (zip(target.elts, value.elts, strict=False) if isinstance(target, ast.Tuple)
                     and isinstance(value, ast.Tuple) else [(target, value)])
            out.update({t.id: v.value for t, v in pairs if isinstance(t, ast.Name)
                        and isinstance(v, ast.Constant) and isinstance(v.value, str)})
    return out


def _strings(call: ast.Call, constants: dict[str, str]) -> list[str]:
    """The call's positional arguments that are strings, or names of module constants that are."""
    return [a.value if isinstance(a, ast.Constant) else constants.get(a.id, "") for a in call.args
            if (isinstance(a, ast.Constant) and isinstance(a.value, str)) or isinstance(a, ast.Name)]


def used_resources(entry: str) -> set[str]:
    """Every resource (and `resource/status`) the code of `entry`'s closure names in one of the ways above."""
    used: set[str] = set()
    for name in closure(entry):
        tree = ast.parse(_module_path(name).read_text())  # type: ignore[union-attr]
        docs, constants = _docstrings(tree), _constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if _PLURAL.fullmatch(node.value):
                    used.add(node.value)
            elif isinstance(node, ast.Call):  # the method called, or passed on to be called with these args
                for method in (f.attr for f in (node.func, *node.args) if isinstance(f, ast.Attribute)):
                    if "custom_object" in method:
                        suffix = "/status" if method.endswith("_status") else ""
                        used.update(f"{s}{suffix}" for s in _strings(node, constants) if _PLURAL.fullmatch(s))
                    elif match := _CLIENT_CALL.match(method):
                        used.add(_plural(match[1]) + ("/status" if match[2] else ""))
                if isinstance(node.func, ast.Name) and node.func.id == "api_path":
                    plural = _strings(ast.Call(node.func, node.args[1:2], []), constants)
                    sub = next((k.value.value for k in node.keywords if k.arg == "subresource"
                                and isinstance(k.value, ast.Constant)), "")
                    used.update(f"{p}/{sub}" for p in plural if sub)
    return used
