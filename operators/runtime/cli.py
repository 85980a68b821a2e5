"""What every component's command line shares: reaching the API server, serving health and metrics,
naming the pod, the sync periods, logging, and turning a failed login into one line and exit status 2."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any

from operators.runtime.schedule import Periods

COMPONENT_PERIODS = Periods(min=0.5, max=30.0, full=30.0)  # the ingress and the controller: every sync is full


def add_api_options(p: argparse.ArgumentParser) -> None:
    """--api-server, --kubeconfig, -v."""
    p.add_argument("--api-server", default=os.environ.get("KNET_API_SERVER"),
                   help="the control-plane endpoint, https://HOST:PORT (default: $KNET_API_SERVER)")
    p.add_argument("--kubeconfig", help="server and credentials from a kubeconfig instead of the service account")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (Kopf's too)")


def add_common_options(p: argparse.ArgumentParser) -> None:
    """The ingress's and the controller's: the API options, --metrics-addr, --health-addr, --pod-name and
    the sync periods."""
    env = os.environ.get
    add_api_options(p)
    p.add_argument("--metrics-addr", default=f"0.0.0.0:{env('KNET_METRICS_PORT') or 9090}",
                   help="Prometheus /metrics (default %(default)s)")
    p.add_argument("--health-addr", default=f"0.0.0.0:{env('KNET_HEALTH_PORT') or 8080}",
                   help="/healthz, /livez, /readyz (default %(default)s)")
    p.add_argument("--pod-name", default=env("POD_NAME"),
                   help="this instance's name in Events (and peering) (default: $POD_NAME, else the host name)")
    p.add_argument("--min-sync-period", type=float, default=COMPONENT_PERIODS.min,
                   help="seconds to collect changes into one sync (default %(default)s)")
    p.add_argument("--max-sync-period", type=float, default=COMPONENT_PERIODS.max,
                   help="seconds between resyncs at most (default %(default)s)")


def periods(args: argparse.Namespace) -> Periods:
    """The ingress's and the controller's periods from their options."""
    return Periods(args.min_sync_period, args.max_sync_period, args.max_sync_period)


def without_kubernetes_client() -> None:
    """Kopf imports the kubernetes client whenever it is installed, only to recognise the client's model
    classes, which knet never hands to Kopf. A component that makes no use of the client (the agent, DNS)
    calls this before importing Kopf, and is spared the client and its models (about 18 MiB)."""
    if "kubernetes" not in sys.modules:
        sys.modules["kubernetes"] = None  # type: ignore[assignment]  # `import kubernetes` raises ImportError


def setup_logging(verbose: bool) -> None:
    """Our INFO (DEBUG with -v); Kopf only from WARNING unless verbose (it logs every event at INFO)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf").setLevel(logging.DEBUG if verbose else logging.WARNING)


def fail(message: str) -> int:
    """Exit status 2 with `error: message` on stderr (bad options, no credentials)."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_component(main: Coroutine[Any, Any, None]) -> int:
    """Run a component until it stops on a signal; exit status 2 when it cannot log in."""
    from operators.runtime.login import LoginError

    try:
        asyncio.run(main)
    except LoginError as e:
        return fail(str(e))
    return 0
