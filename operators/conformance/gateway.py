"""The Gateway API conformance suite (sigs.k8s.io/gateway-api's `conformance` module) against knet on kind.

`hack/build-gateway-conformance.sh` builds the suite as a test binary and the images its base manifests run;
here they are put to work: the kind cluster with knet (`knet kind up --install`, unless a kubeconfig is given),
the images loaded into its nodes, the GatewayClass of knet's controllerName, and the suite run inside the
`knet-kind` network namespace, where the Gateways' LoadBalancer addresses (knet's pool on the node network)
are reachable as from a client beside the nodes. The pure part (the command line, the skips, reading the
result out of `go test -v`'s output) is separate from the shell, so that it is tested without a cluster.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

GATEWAY_API_VERSION = "v1.6.3"
CONTROLLER = "knet.io/gateway-nginx"
GATEWAY_CLASS = "knet"
PROFILE = "GATEWAY-HTTP"
# What knet claims: the profile's core features and the extended ones whose tests pass on kind
# (conformance/gateway/README.md); `--feature` tries another without claiming it.
CORE_FEATURES = ("Gateway", "HTTPRoute", "ReferenceGrant")
EXTENDED_FEATURES = (
    "GatewayAddressEmpty", "GatewayHTTPListenerIsolation", "GatewayInfrastructure", "GatewayPort8080",
    "HTTPRouteParentRefPort", "HTTPRoute303RedirectStatusCode", "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode", "HTTPRouteBackendProtocolWebSocket", "HTTPRouteBackendTimeout",
    "HTTPRouteCORS", "HTTPRouteDestinationPortMatching",
    "HTTPRouteHostRewrite", "HTTPRouteMethodMatching", "HTTPRouteNamedRouteRule", "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite", "HTTPRoutePortRedirect", "HTTPRouteQueryParamMatching", "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors", "HTTPRouteRequestPercentageMirror", "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification", "HTTPRouteSchemeRedirect")
SUPPORTED_FEATURES = CORE_FEATURES + EXTENDED_FEATURES
NETNS = "knet-kind"


class GatewayConformanceError(RuntimeError):
    """Something the run needs is missing or failed before the suite ran; the message says what."""


@dataclass(frozen=True)
class SuiteSkip:
    test: str
    reason: str


def load_skips(text: str) -> list[SuiteSkip]:
    """conformance/gateway/skips.yaml: a list of {test, reason}; every skip must say why."""
    items = yaml.safe_load(text) or []
    if not isinstance(items, list):
        raise GatewayConformanceError("skips.yaml: expected a list of {test, reason}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("test") or not str(item.get("reason", "")).strip():
            raise GatewayConformanceError(f"skips.yaml entry {i}: needs a test name and a reason")
        out.append(SuiteSkip(str(item["test"]), str(item["reason"]).strip()))
    return out


def command(binary: Path, skips: Iterable[SuiteSkip], report: Path, version: str, *,
            features: Iterable[str] = SUPPORTED_FEATURES, run_test: str = "") -> list[str]:
    """The suite's command line: the GATEWAY-HTTP profile with knet's class and features, the skips named."""
    skipped = ",".join(s.test for s in skips)
    return [str(binary), "-test.v", "-test.run", "^TestConformance$", "-test.timeout", "60m",
            f"-gateway-class={GATEWAY_CLASS}", f"-conformance-profiles={PROFILE}",
            f"-supported-features={','.join(features)}", *([f"-skip-tests={skipped}"] if skipped else []),
            *([f"-run-test={run_test}"] if run_test else []),
            f"-report-output={report}", "-organization=knet", "-project=knet",
            "-url=https://knet.io", f"-version={version}", "-contact=knet maintainers",
            "-cleanup-base-resources=true"]


_RESULT = re.compile(r"^\s*--- (PASS|FAIL|SKIP): TestConformance/([^/\s]+) \(")


def results(output: str) -> dict[str, str]:
    """Each test of the suite (`TestConformance/NAME`, not its sub-tests) -> PASS, FAIL or SKIP."""
    out: dict[str, str] = {}
    for line in output.splitlines():
        if m := _RESULT.match(line):
            out[m.group(2)] = m.group(1)
    return out


def summary(res: Mapping[str, str], skips: Iterable[SuiteSkip]) -> str:
    """Counts, then each failed and skipped test (with knet's reason for the skips it asked for)."""
    why = {s.test: s.reason for s in skips}
    counts = {k: sum(v == k for v in res.values()) for k in ("PASS", "FAIL", "SKIP")}
    lines = [f"{len(res)} tests: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped"]
    for name in sorted(n for n, v in res.items() if v == "FAIL"):
        lines.append(f"FAIL  {name}")
    for name in sorted(n for n, v in res.items() if v == "SKIP"):
        lines.append(f"SKIP  {name}: {why.get(name, 'a feature knet does not claim (the suite skips it)')}")
    return "\n".join(lines) + "\n"


GATEWAY_CLASS_MANIFEST = {
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
    "metadata": {"name": GATEWAY_CLASS}, "spec": {"controllerName": CONTROLLER},
}


# --- the shell

def build() -> tuple[Path, Path]:
    """hack/build-gateway-conformance.sh: (the binaries' directory, the image archive)."""
    from operators.kind.cluster import REPO

    proc = subprocess.run([str(REPO / "hack" / "build-gateway-conformance.sh")], stdout=subprocess.PIPE, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or len(lines) < 2:
        raise GatewayConformanceError(f"hack/build-gateway-conformance.sh failed (exit {proc.returncode})")
    return Path(lines[-2]), Path(lines[-1])


def prepare(kubeconfig: Path, archive: Path, cluster: str) -> None:
    """The suite's images in every node, and knet's GatewayClass (accepted before the suite starts)."""
    from operators.kind.cluster import kind_bin
    from operators.kind.layout import KindLayout
    from operators.kind.podman import environ, run

    env = environ(kind_bin())
    run(["kind", "load", "image-archive", str(archive), "--name", cluster], env=env)
    layout = KindLayout(cluster)
    _kubectl(kubeconfig, "apply", "-f", "-", input=yaml.safe_dump(GATEWAY_CLASS_MANIFEST))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        out = _kubectl(kubeconfig, "get", "gatewayclass", GATEWAY_CLASS, "-o",
                       "jsonpath={.status.conditions[?(@.type=='Accepted')].status}", check=False).stdout
        if out.strip() == "True":
            return
        time.sleep(2)
    raise GatewayConformanceError(f"GatewayClass {GATEWAY_CLASS} not Accepted after 120 s ({layout.name})")


def _kubectl(kubeconfig: Path, *args: str, input: str | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    from operators.devcluster import upstream

    proc = subprocess.run([str(upstream.bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
                          capture_output=True, text=True, input=input, timeout=120)
    if check and proc.returncode != 0:
        raise GatewayConformanceError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def execute(argv: list[str], kubeconfig: Path, out_dir: Path, echo: bool = True) -> str:
    """The suite in the kind network namespace; its whole output is kept in out_dir/suite.log and returned."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    full = ["nsenter", f"--net=/run/netns/{NETNS}", "--", *argv]
    print(f"== {' '.join(argv[:1])} ... (log: {out_dir / 'suite.log'})", file=sys.stderr, flush=True)
    lines = []
    with open(out_dir / "suite.log", "w", buffering=1) as log, subprocess.Popen(
            full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=out_dir) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            lines.append(line)
            if echo and _RESULT.match(line):
                sys.stdout.write(line)
                sys.stdout.flush()
        proc.wait()
    return "".join(lines)
