"""`knet conformance compare`: the same suites against knet and against the baseline. The shell.

Both sides run on the same kind cluster shape (`knet kind up --install`, and `--baseline` for kube-proxy,
kubeadm's CoreDNS and kube-network-policies), with the same e2e.test, focus, skips.yaml, ginkgo processes
and retries, one cluster after the other: two at once would halve each one's share of a small machine and
make both slower than either alone. Each side's runs go to OUT/SIDE/SUITE, the table comparing them to
OUT/table.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .runner import execute, load_runs, make_plan
from .skips import Skip
from .suites import SUITES
from .table import render, summarize

# side (and its cluster's name) -> `knet kind up --baseline`; the baseline first, so that a broken one shows early
SIDES = {"baseline": True, "knet": False}
# What a side cannot run on this machine, and why; its table cells stay empty ("-").
CANNOT = {("baseline", "netpol"): "kube-network-policies queues every new connection with nftables' `queue` "
                                  "statement, which this kernel lacks (conformance/baseline/README.md)"}


def run_side(side: str, suites: Sequence[str], skips: list[Skip], out: Path, procs: int, echo: bool) -> int:
    """Make the side's cluster, run each suite on it, take it down; 0 when every suite passed."""
    from operators.devcluster.netns import CommandError
    from operators.kind import cluster

    status = 0
    try:
        layout = cluster.up(side, install_knet=True, baseline=SIDES[side])
        for suite in suites:
            if reason := CANNOT.get((side, suite)):
                print(f"== {side}: {suite} not run: {reason}", file=sys.stderr, flush=True)
                continue
            plan = make_plan(SUITES[suite], skips, layout.kubeconfig, out / side / suite, procs=procs)
            status |= execute(plan, skips, echo=echo) != 0
    except (cluster.KindError, CommandError) as e:  # the other side still runs
        print(f"error: {side}: {e}", file=sys.stderr)
        status = 1
    finally:
        cluster.down(side)
    return status


def has_runs(side_dir: Path) -> bool:
    """Whether a side's directory holds at least one run."""
    return any(side_dir.glob("*/junit_*.xml"))


def table(out: Path) -> str:
    """The table of OUT/knet against OUT/baseline (either side alone if the other has no run)."""
    sides = {side: [summarize(r) for r in load_runs(out / side)] if has_runs(out / side) else [] for side in SIDES}
    runs, baselines = (sides["knet"], sides["baseline"]) if sides["knet"] else (sides["baseline"], [])
    ran = {(side, s.suite) for side, summaries in sides.items() for s in summaries}
    notes = [f"- {side} did not run {suite}: {reason}" for (side, suite), reason in CANNOT.items()
             if (side, suite) not in ran and any(s.suite == suite for s in runs)]
    return render(runs, baselines) + ("\nNot run:\n" + "\n".join(notes) + "\n" if notes else "")


def compare(suites: Sequence[str], skips: list[Skip], out: Path, sides: Sequence[str] = tuple(SIDES),
            procs: int = 2, echo: bool = True) -> int:
    status = 0
    for side in sides:
        print(f"== conformance: {side} ({', '.join(suites)})", file=sys.stderr, flush=True)
        status |= run_side(side, suites, skips, out, procs, echo)
    text = table(out)
    (out / "table.md").write_text(text)
    sys.stdout.write(text)
    return status
