"""`knet`: the command line. Each capability registers its own sub-commands.

Only the module of the sub-command being run is imported (all of them for `knet --help`): a component
started as `knet agent` must not carry the ingress's template engine, the devcluster's kubernetes client
or the conformance runner in its memory.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

COMMANDS = {  # sub-command -> the module whose register() adds it
    "agent": "operators.agent.cli",
    "controller": "operators.controller.cli",
    "dns": "operators.dns.cli",
    "ingress": "operators.ingress.cli",
    "devcluster": "operators.devcluster.cli",
    "kind": "operators.kind.cli",
    "conformance": "operators.conformance.cli",
    "render": "operators.offline_cli",
    "explain": "operators.offline_cli",
}


def modules_for(argv: list[str]) -> list[str]:
    """The modules to register: the named sub-command's alone, else every one (help, a typo)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return [COMMANDS[first]] if first in COMMANDS else list(dict.fromkeys(COMMANDS.values()))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="knet", description="Kubernetes networking as Kopf operators")
    parser.add_argument("--version", action="version", version=f"knet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in modules_for(argv):
        importlib.import_module(name).register(sub)
    args = parser.parse_args(argv)
    sys.exit(args.func(args) or 0)


if __name__ == "__main__":
    main()
