"""Runs upstream's e2e.test against a cluster and reads run directories back. The shell.

What a run is given, and why:
- `--provider=skeleton`: e2e's null provider, what kind's own CI runs. `local` is the same null
  provider plus the tests marked [Provider:...,local,...], which SSH into nodes; kind's have no SSH.
- More than one process goes through the ginkgo CLI (`ginkgo --procs=N e2e.test -- ...`): e2e.test
  alone runs its specs in series. [Serial] specs still run alone, at the end. 2 processes suit a
  2-core machine that also runs the 3 nodes; most of a test's time is waiting for pods.
- `--kubectl-path`: e2e runs `kubectl exec` for its in-pod probes; the pinned kubectl is used.
- `--disable-log-dump`: the post-run dump shells out to cluster/log-dump/log-dump.sh of a Kubernetes
  checkout, which is not here.
- No KUBE_TEST_REPO_LIST: the images are loaded under the very names e2e.test asks for.
- `--flake-attempts=2` and `--report-complete-ginkgo`: a failed spec runs once more, and ginkgo's JSON
  report (<report-dir>/ginkgo/report.json) records how often each ran, so that a spec that passed only on its
  second attempt is listed as such in the table rather than hidden. The same for knet and the baseline.

A run directory holds e2e's junit_01.xml, the whole output (e2e.log) and run.json (the suite, its
focus, the skips used, the command, times, exit code), so that `table` reads it back as it ran.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import yaml

from operators.devcluster import upstream

from .junit import parse_attempts, parse_junit, with_attempts
from .skips import Skip, load_skips, skip_regex
from .suites import SUITES, Suite
from .table import SuiteRun, render, summarize

JUNIT = "junit_01.xml"
GINKGO_JSON = "ginkgo/report.json"
LOG = "e2e.log"
META = "run.json"


class RunError(RuntimeError):
    """Something a run needs is missing; the message says what to do."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def skips_file() -> Path:
    return repo_root() / "conformance" / "skips.yaml"


def e2e_bin_dir() -> Path:
    """hack/build-e2e.sh's output (KNET_E2E_BIN overrides it)."""
    if env := os.environ.get("KNET_E2E_BIN"):
        return Path(env)
    root = Path(os.environ.get("KNET_CACHE") or Path.home() / ".cache/knet")
    return root / "e2e" / f"k8s-{upstream.versions()['KUBE_VERSION']}" / "bin"


def find_kubectl() -> str:
    pinned = upstream.bin_dir() / "kubectl"
    if os.access(pinned, os.X_OK):
        return str(pinned)
    if found := shutil.which("kubectl"):
        return found
    raise RunError("no kubectl: run hack/build-upstream.sh (e2e runs `kubectl exec` for its probes)")


@dataclass(frozen=True)
class Plan:
    """Everything one run is made of; `command()` turns it into argv."""

    suite: str
    focus: str
    skip: str
    kubeconfig: Path
    report_dir: Path
    bin_dir: Path
    kubectl: str
    procs: int
    timeout_minutes: int
    flake_attempts: int = 2

    def command(self) -> list[str]:
        e2e = str(self.bin_dir / "e2e.test")
        e2e_args = [f"--kubeconfig={self.kubeconfig}", "--provider=skeleton", f"--report-dir={self.report_dir}",
                    f"--kubectl-path={self.kubectl}", "--disable-log-dump", "--report-complete-ginkgo"]
        ginkgo = [f"--focus={self.focus}", *([f"--skip={self.skip}"] if self.skip else []),
                  f"--timeout={self.timeout_minutes}m", f"--flake-attempts={self.flake_attempts}", "--no-color",
                  "--silence-skips"]
        if self.procs > 1:
            return [str(self.bin_dir / "ginkgo"), f"--procs={self.procs}", *ginkgo, e2e, "--", *e2e_args]
        return [e2e, *(f"--ginkgo.{a.removeprefix('--')}" for a in ginkgo), *e2e_args]


def make_plan(suite: Suite, skips: list[Skip], kubeconfig: Path, report_dir: Path, *, procs: int = 2,
              timeout_minutes: int | None = None, bin_dir: Path | None = None, kubectl: str | None = None) -> Plan:
    """The run of `suite` minus `skips`; RunError when e2e.test, ginkgo, kubectl or the kubeconfig is missing."""
    bin_dir = bin_dir or e2e_bin_dir()
    missing = [n for n in ("e2e.test", "ginkgo") if not os.access(bin_dir / n, os.X_OK)]
    if missing:
        raise RunError(f"{', '.join(missing)} missing in {bin_dir}: run hack/build-e2e.sh")
    if not kubeconfig.is_file():
        raise RunError(f"no kubeconfig at {kubeconfig}")
    return Plan(suite.name, suite.focus, skip_regex(skips), kubeconfig.resolve(), report_dir.resolve(),
                bin_dir, kubectl or find_kubectl(), procs, timeout_minutes or suite.timeout_minutes)


def _server(kubeconfig: Path) -> str:
    try:
        clusters = (yaml.safe_load(kubeconfig.read_text()) or {}).get("clusters") or []
        return str(clusters[0]["cluster"]["server"])
    except (OSError, yaml.YAMLError, LookupError, TypeError):
        return ""


def _e2e_version(bin_dir: Path) -> str:
    proc = subprocess.run([str(bin_dir / "e2e.test"), "--version"], capture_output=True, text=True, timeout=60)
    return (proc.stdout or proc.stderr).strip()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_with_parent() -> None:
    """In the child, before exec: SIGINT when the parent dies (prctl PR_SET_PDEATHSIG), even by SIGKILL,
    and SIGINT handled even where this process was started with it ignored (a shell's background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    ctypes.CDLL(None).prctl(1, signal.SIGINT)


def _copy(lines: Iterable[str], log: TextIO, echo: bool) -> None:
    for line in lines:
        log.write(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()


def execute(plan: Plan, skips: list[Skip], *, echo: bool = True) -> int:
    """Run e2e as planned into plan.report_dir (our earlier files there are replaced); print the table.

    Returns 0 when the report exists and no selected test (or suite node) failed; 130 if interrupted."""
    plan.report_dir.mkdir(parents=True, exist_ok=True)
    for name in (JUNIT, LOG, META, GINKGO_JSON):
        (plan.report_dir / name).unlink(missing_ok=True)
    meta = {"suite": plan.suite, "focus": plan.focus, "skip": plan.skip,
            "skips": [asdict(s) for s in skips], "command": plan.command(), "procs": plan.procs,
            "kubeconfig": str(plan.kubeconfig), "server": _server(plan.kubeconfig),
            "e2e_version": _e2e_version(plan.bin_dir), "started": _now()}
    (plan.report_dir / META).write_text(json.dumps(meta, indent=2) + "\n")
    env = {**os.environ, "KUBECONFIG": str(plan.kubeconfig)}
    print(f"== {plan.suite}: {' '.join(plan.command()[:3])} ... (log: {plan.report_dir / LOG})", file=sys.stderr)
    start = time.monotonic()
    # ginkgo gets its own session: a terminal's Ctrl-C (or a SIGTERM) reaches this process only, which
    # forwards one SIGINT, ginkgo's "clean up and report" (a second would make it abort at once); if this
    # process dies anyhow, the kernel sends ginkgo that SIGINT.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    with open(plan.report_dir / LOG, "w", buffering=1) as log, subprocess.Popen(
            plan.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True, preexec_fn=_interrupt_with_parent) as proc:
        assert proc.stdout is not None
        interrupted = False
        try:
            _copy(proc.stdout, log, echo)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: ginkgo deletes its namespaces and writes the report (Ctrl-C again: kill)",
                  file=sys.stderr)
            proc.send_signal(signal.SIGINT)
            try:
                _copy(proc.stdout, log, echo)  # keep draining, or ginkgo blocks on a full pipe
            except KeyboardInterrupt:
                proc.kill()
        finally:
            signal.signal(signal.SIGTERM, previous)
        code = proc.wait()
    meta.update(finished=_now(), seconds=round(time.monotonic() - start, 1), exit_code=code, interrupted=interrupted)
    (plan.report_dir / META).write_text(json.dumps(meta, indent=2) + "\n")
    if not (plan.report_dir / JUNIT).is_file():
        print(f"error: e2e exited {code} and wrote no {JUNIT} (see {plan.report_dir / LOG})", file=sys.stderr)
        return 130 if interrupted else 1
    summary = summarize(load_run(plan.report_dir))
    print(f"\n{render([summary])}report: {plan.report_dir}  ({meta['seconds']} s)")
    if interrupted:
        return 130
    return 0 if code == 0 and not summary.failed and not summary.setup_failures else 1


def load_run(run_dir: Path) -> SuiteRun:
    """A run directory -> SuiteRun (run.json's suite, focus and skips where it has them)."""
    junit = run_dir / JUNIT
    if not junit.is_file():
        found = sorted(run_dir.glob("junit_*.xml"))
        if not found:
            raise RunError(f"no {JUNIT} in {run_dir}")
        junit = found[0]
    meta: dict = {}
    if (run_dir / META).is_file():
        meta = json.loads((run_dir / META).read_text())
    skips = tuple(Skip(**s) for s in meta["skips"]) if "skips" in meta else tuple(_current_skips())
    report = parse_junit(junit.read_text())
    if (run_dir / GINKGO_JSON).is_file():
        report = with_attempts(report, parse_attempts((run_dir / GINKGO_JSON).read_text()))
    return SuiteRun(meta.get("suite") or run_dir.name, report, meta.get("focus", ""), skips)


def _current_skips() -> list[Skip]:
    path = skips_file()
    return load_skips(path.read_text()) if path.is_file() else []


def load_runs(path: Path) -> list[SuiteRun]:
    """One run directory, or a directory of them (as `make conformance` writes), in suite order."""
    if (path / JUNIT).is_file() or list(path.glob("junit_*.xml")):
        return [load_run(path)]
    dirs = sorted(d for d in path.iterdir() if d.is_dir() and list(d.glob("junit_*.xml"))) if path.is_dir() else []
    runs = [load_run(d) for d in dirs]
    if not runs:
        raise RunError(f"no run (a directory with {JUNIT}) in {path}")
    order = {name: i for i, name in enumerate(SUITES)}
    return sorted(runs, key=lambda r: (order.get(r.suite, len(order)), r.suite))
