"""What splits knet dns's per-query cost: `sudo .venv/bin/python -m bench.dns_split` (root: a network namespace).

Three UDP servers on CPU 0 in namespace `kbench-dnssplit`, the same dnsperf on CPU 1 as
`bench/test_dns_bench.py`, on 4000 cluster questions about 2000 Services x 5 endpoints, in alternating
rounds (medians printed): knet dns as the bench runs it (`bench.dns_knet`, answers from packed replies),
the same with its per-query Prometheus updates (a Counter's `inc` and a Histogram's `observe`) made
no-ops, and the bench's echo loop (a Python recvfrom/sendto loop doing no DNS work: the ceiling of any
Python server on that core). The differences in microseconds per query are what the metric updates and
the rest of knet's work (asyncio's transport, the lookup, the reply) cost above the socket calls.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.dns_data import Cluster
from bench.test_dns_bench import ECHO, ROOT
from operators.devcluster import netns

NS = "kbench-dnssplit"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
NO_METRICS = ("import prometheus_client.metrics as m, runpy, sys; m.Counter.inc = lambda *a, **k: None; "
              "m.Histogram.observe = lambda *a, **k: None; sys.argv[0] = 'bench.dns_knet'; "
              "runpy.run_module('bench.dns_knet', run_name='__main__')")
DATA = ["--services", "2000", "--pods-per-service", "5"]
SERVERS = {
    "knet dns": (5310, ["-m", "bench.dns_knet", *DATA, "--listen", "127.0.0.1:5310"]),
    "knet dns, metric updates no-op": (5311, ["-c", NO_METRICS, *DATA, "--listen", "127.0.0.1:5311"]),
    "echo loop": (5312, ["-c", ECHO, "5312"]),
}
ROUNDS, SECONDS = 5, 8


def in_ns(cpu: int, *argv: str) -> list[str]:
    return ["taskset", "-c", str(cpu), "nsenter", f"--net={netns.NETNS_DIR / NS}", "--", *argv]


def peak_qps(port: int, queries: Path) -> float:
    """dnsperf's QPS with 100 outstanding, after one pass that fills knet's packed replies; every answer NOERROR."""
    base = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries)]
    subprocess.run(in_ns(1, *base, "-n", "1"), capture_output=True, check=True)
    out = subprocess.run(in_ns(1, *base, "-l", str(SECONDS), "-q", "100"), capture_output=True, text=True,
                         check=True).stdout
    done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    noerror = re.search(r"NOERROR (\d+)", out)
    assert done > 0 and noerror and int(noerror.group(1)) == done, out
    return float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))


def main() -> None:
    netns.delete(NS)
    netns.add(NS)
    procs = [subprocess.Popen(in_ns(0, PYTHON, *argv), cwd=ROOT) for _, argv in SERVERS.values()]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            queries = Path(tmp) / "cluster.txt"
            queries.write_text("\n".join(Cluster(2000, 5).cluster_questions(4000)) + "\n")
            time.sleep(15)  # both knet servers loaded
            runs: dict[str, list[float]] = {name: [] for name in SERVERS}
            for _ in range(ROUNDS):
                for name, (port, _) in SERVERS.items():
                    runs[name].append(peak_qps(port, queries))
        for name, values in runs.items():
            qps = statistics.median(values)
            print(f"{name}: {qps:.0f} QPS, {1e6 / qps:.1f} us per query (median of {ROUNDS})")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        netns.delete(NS)


if __name__ == "__main__":
    main()
