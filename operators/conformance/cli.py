"""`knet conformance run|compare|table|list`: upstream's e2e.test against a cluster (or against knet and the
baseline, each on its own kind cluster), and its results as a table."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from operators.cli_errors import Command, one_line_errors
from operators.kind import cluster
from operators.kind.podman import KindError

from . import gateway
from .gateway import GatewayConformanceError
from .junit import JUnitError
from .runner import RunError, e2e_bin_dir, execute, load_runs, make_plan, repo_root, skips_file
from .skips import SkipsError, load_skips, unused
from .suites import SUITES, Suite, parse_test_list, plan
from .table import render, summarize


def _suite(args: argparse.Namespace) -> Suite:
    suite = SUITES[args.suite]
    if args.focus:  # a focus of one's own replaces the suite's (e.g. to re-run one failed test)
        suite = Suite(args.suite, args.focus, suite.timeout_minutes, f"--focus {args.focus}")
    return suite


def cmd_run(args: argparse.Namespace) -> int:
    suite = _suite(args)
    skips = load_skips(Path(args.skips).read_text())
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    default = repo_root() / "build/conformance" / f"{suite.name}-{stamp}"
    report_dir = Path(args.report_dir) if args.report_dir else default
    p = make_plan(suite, skips, Path(args.kubeconfig), report_dir, procs=args.procs, timeout_minutes=args.timeout)
    return execute(p, skips, echo=not args.quiet)


def cmd_compare(args: argparse.Namespace) -> int:
    from . import compare

    skips = load_skips(Path(args.skips).read_text())
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else repo_root() / "build/conformance" / stamp
    suites = args.suite or ["conformance", "netpol", "services-dns"]
    return compare.compare(suites, skips, out, sides=args.side or tuple(compare.SIDES), procs=args.procs,
                           echo=not args.quiet)


def cmd_table(args: argparse.Namespace) -> int:
    runs = [summarize(r) for r in load_runs(Path(args.run_dir))]
    baselines = [summarize(r) for r in load_runs(Path(args.baseline_dir))] if args.baseline_dir else []
    if len(runs) == 1 and len(baselines) == 1:  # two single runs: compare them whatever their names
        baselines = [replace(baselines[0], suite=runs[0].suite)]
    sys.stdout.write(render(runs, baselines))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    suite = _suite(args)
    skips = load_skips(Path(args.skips).read_text())
    e2e = e2e_bin_dir() / "e2e.test"
    try:
        out = subprocess.run([str(e2e), "--list-tests"], capture_output=True, text=True, timeout=120, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise RunError(f"{e2e} --list-tests failed ({e}): run hack/build-e2e.sh") from e
    names = parse_test_list(out.stdout)
    planned = plan(suite, names, skips)
    for p in planned:
        print(f"run   {p.name}" if p.skip is None else f"skip  {p.name}\n        {p.skip.reason}")
    runs = sum(p.skip is None for p in planned)
    print(f"{suite.name}: {len(planned)} selected, {runs} run, {len(planned) - runs} skipped", file=sys.stderr)
    for s in unused(skips, names):
        print(f"warning: skips.yaml entry matches no test of this e2e.test: {s.label}", file=sys.stderr)
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    skips = gateway.load_skips(Path(args.skips).read_text())
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = (Path(args.out) if args.out else repo_root() / "build/conformance" / f"gateway-{stamp}").resolve()
    bin_dir, archive = gateway.build()
    made = not args.kubeconfig
    kubeconfig = Path(args.kubeconfig) if args.kubeconfig else cluster.up(args.name, install_knet=True).kubeconfig
    try:
        gateway.prepare(kubeconfig, archive, args.name)
        features = (*gateway.SUPPORTED_FEATURES, *(args.feature or ()))
        argv = gateway.command(bin_dir / "gateway-conformance.test", skips, out / "report.yaml", _version(),
                               features=features, run_test=args.run_test or "")
        output = gateway.execute(argv, kubeconfig, out, echo=not args.quiet)
    finally:
        if made and not args.keep:
            cluster.down(args.name)
    res = gateway.results(output)
    text = gateway.summary(res, skips)
    (out / "summary.txt").write_text(text)
    print(f"\n{text}report: {out}")
    return 0 if res and "FAIL" not in res.values() else 1


def _version() -> str:
    return next(line.split('"')[1] for line in (repo_root() / "pyproject.toml").read_text().splitlines()
                if line.startswith("version = "))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("conformance", help="upstream's e2e suites (sig-network) against a cluster; their tables")
    csub = p.add_subparsers(dest="conformance_command", required=True)
    suites = ", ".join(f"{s.name} ({s.about})" for s in SUITES.values())

    def selection(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--suite", required=True, choices=sorted(SUITES), help=f"one of: {suites}")
        sp.add_argument("--focus", help="a ginkgo focus regex that replaces the suite's (skips.yaml still applies)")
        sp.add_argument("--skips", default=str(skips_file()), help="the skip list (default: conformance/skips.yaml)")

    run = csub.add_parser("run", help="run a suite with e2e.test; prints the table and the run's directory")
    run.add_argument("--kubeconfig", required=True)
    selection(run)
    run.add_argument("--report-dir", help="where junit_01.xml, e2e.log and run.json go "
                     "(default: build/conformance/SUITE-TIME)")
    run.add_argument("--procs", type=int, default=2, help="parallel ginkgo processes (default 2; 1: e2e.test alone)")
    run.add_argument("--timeout", type=int, help="minutes for the whole run (default: the suite's)")
    run.add_argument("--quiet", action="store_true", help="keep e2e's output in e2e.log only")
    run.set_defaults(func=_guard(cmd_run))

    both = csub.add_parser("compare", help="knet, then the baseline (kube-proxy, CoreDNS, kube-network-policies), "
                           "each on a kind cluster of its own made and deleted here; writes OUT/SIDE/SUITE and "
                           "OUT/table.md, and prints the table")
    both.add_argument("--suite", action="append", choices=sorted(SUITES),
                      help="a suite to run (repeatable; default: conformance, netpol, services-dns)")
    both.add_argument("--side", action="append", choices=["knet", "baseline"],
                      help="run this side only (repeatable; default: both)")
    both.add_argument("--skips", default=str(skips_file()), help="the skip list (default: conformance/skips.yaml)")
    both.add_argument("--out", help="the runs' directory (default: build/conformance/TIME)")
    both.add_argument("--procs", type=int, default=2, help="parallel ginkgo processes (default 2)")
    both.add_argument("--quiet", action="store_true", help="keep e2e's output in each run's e2e.log only")
    both.set_defaults(func=_guard(cmd_compare))

    table = csub.add_parser("table", help="passed/failed/skipped per suite of a run (or a directory of runs)")
    table.add_argument("run_dir")
    table.add_argument("baseline_dir", nargs="?", help="another run to compare with, test by test")
    table.set_defaults(func=_guard(cmd_table))

    lst = csub.add_parser("list", help="what a suite selects and what skips.yaml takes out (no cluster needed)")
    selection(lst)
    lst.set_defaults(func=_guard(cmd_list))

    gw = csub.add_parser("gateway", help="the Gateway API conformance suite (GATEWAY-HTTP) against knet on kind: "
                         "builds it, makes the cluster (unless --kubeconfig), runs the suite in the kind network "
                         "namespace, deletes the cluster; prints pass/fail/skip and writes OUT/report.yaml")
    gw.add_argument("--kubeconfig", help="a kind cluster with knet already up (kept as it is)")
    gw.add_argument("--name", default="knet", help="the kind cluster's name (default: knet)")
    gw.add_argument("--skips", default=str(repo_root() / "conformance/gateway/skips.yaml"),
                    help="tests knet skips, each with its reason (default: conformance/gateway/skips.yaml)")
    gw.add_argument("--out", help="where suite.log, report.yaml and summary.txt go "
                    "(default: build/conformance/gateway-TIME)")
    gw.add_argument("--feature", action="append", help="an extended feature to test beside the ones knet claims "
                    "(repeatable; e.g. HTTPRouteMethodMatching)")
    gw.add_argument("--run-test", help="one test of the suite only (e.g. HTTPRouteSimpleSameNamespace)")
    gw.add_argument("--keep", action="store_true", help="leave the cluster it made up")
    gw.add_argument("--quiet", action="store_true", help="keep the suite's output in suite.log only")
    gw.set_defaults(func=_guard(cmd_gateway))


def _guard(func: Command) -> Command:
    return one_line_errors(func, (RunError, SkipsError, JUnitError, OSError, GatewayConformanceError, KindError), 1)
