"""`knet`: the command line. Each capability registers its own sub-commands."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def main(argv: list[str] | None = None) -> None:
    from . import offline_cli
    from .agent import cli as agent_cli
    from .conformance import cli as conformance_cli
    from .controller import cli as controller_cli
    from .devcluster import cli as devcluster_cli
    from .dns import cli as dns_cli
    from .ingress import cli as ingress_cli
    from .kind import cli as kind_cli

    parser = argparse.ArgumentParser(prog="knet", description="Kubernetes networking as Kopf operators")
    parser.add_argument("--version", action="version", version=f"knet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    devcluster_cli.register(sub)
    offline_cli.register(sub)
    agent_cli.register(sub)
    controller_cli.register(sub)
    dns_cli.register(sub)
    ingress_cli.register(sub)
    kind_cli.register(sub)
    conformance_cli.register(sub)
    args = parser.parse_args(argv)
    sys.exit(args.func(args) or 0)


if __name__ == "__main__":
    main()
