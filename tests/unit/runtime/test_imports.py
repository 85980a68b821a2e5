"""The components run without the kubernetes client (the image does not install it): every module they
import works when it cannot be imported, and Kopf then does not load it either."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from operators.runtime.cli import without_kubernetes_client
without_kubernetes_client()
import operators.agent.operator, operators.agent.uninstall, operators.dns.watch
import operators.controller.operator, operators.ingress.operator
print(sorted(m for m in sys.modules if m.split(".")[0] in ("kubernetes", "pydantic") and sys.modules[m]))
"""


def test_the_components_import_no_kubernetes_client() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


CLI = """
import contextlib, sys
from operators import cli
with contextlib.suppress(SystemExit):
    cli.main(["agent", "--help"])
print(sorted({m.split(".")[0] for m in sys.modules} & {"kubernetes", "jinja2", "dnslib", "cryptography", "kopf"}))
"""


def test_the_agent_loads_pyroute2_in_cni_mode_alone() -> None:
    probe = "import sys, operators.agent.operator; print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_knet_agent_loads_no_other_components_libraries() -> None:
    out = subprocess.run([sys.executable, "-c", CLI], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_every_sub_command_is_offered_when_none_is_named() -> None:
    out = subprocess.run([sys.executable, "-m", "operators.cli", "--help"], capture_output=True, text=True, check=True)
    assert all(name in out.stdout for name in ("agent", "controller", "dns", "ingress", "kind", "render", "explain"))
