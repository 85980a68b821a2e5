"""The runner's command line, and run directories read back (no cluster)."""

import json
import subprocess
import sys
from pathlib import Path

from operators.conformance import compare
from operators.conformance.runner import Plan, execute, load_runs, make_plan
from operators.conformance.suites import SUITES

PLAN = dict(suite="quick", focus="F", skip="S", kubeconfig=Path("/k/kubeconfig"), report_dir=Path("/r"),
            bin_dir=Path("/b"), kubectl="/u/kubectl", procs=2, timeout_minutes=20)
E2E_ARGS = ["--kubeconfig=/k/kubeconfig", "--provider=skeleton", "--report-dir=/r", "--kubectl-path=/u/kubectl",
            "--disable-log-dump", "--report-complete-ginkgo"]


def test_two_processes_go_through_the_ginkgo_cli():
    assert Plan(**PLAN).command() == ["/b/ginkgo", "--procs=2", "--focus=F", "--skip=S", "--timeout=20m",
                                      "--flake-attempts=2", "--no-color", "--silence-skips", "/b/e2e.test", "--",
                                      *E2E_ARGS]


def test_one_process_is_e2e_test_alone_with_ginkgos_flags_prefixed():
    assert Plan(**{**PLAN, "procs": 1, "skip": ""}).command() == [
        "/b/e2e.test", "--ginkgo.focus=F", "--ginkgo.timeout=20m", "--ginkgo.flake-attempts=2", "--ginkgo.no-color",
        "--ginkgo.silence-skips", *E2E_ARGS]


def write_run(d: Path, suite: str, cases: str) -> Path:
    d.mkdir(parents=True)
    (d / "junit_01.xml").write_text(f'<testsuite name="Kubernetes e2e suite" time="5">{cases}</testsuite>')
    (d / "run.json").write_text(json.dumps({"suite": suite, "focus": "", "skips": []}))
    return d


def test_a_directory_of_runs_reads_back_in_suite_order(tmp_path: Path):
    write_run(tmp_path / "b", "netpol", '<testcase name="[It] n" status="passed" time="1"/>')
    write_run(tmp_path / "a", "services-dns", '<testcase name="[It] s" status="passed" time="1"/>')
    write_run(tmp_path / "c", "conformance", '<testcase name="[It] c" status="passed" time="1"/>')
    assert [r.suite for r in load_runs(tmp_path)] == ["conformance", "netpol", "services-dns"]
    assert [r.suite for r in load_runs(tmp_path / "b")] == ["netpol"]


def test_a_spec_that_passed_on_its_second_attempt_reads_back_as_retried(tmp_path: Path):
    run = write_run(tmp_path / "r", "quick", '<testcase name="[It] [sig-network] S a" status="passed" time="1"/>')
    (run / "ginkgo").mkdir()
    (run / "ginkgo/report.json").write_text(json.dumps([{"SpecReports": [
        {"LeafNodeType": "It", "ContainerHierarchyTexts": ["[sig-network] S", ""], "LeafNodeText": "a",
         "State": "passed", "NumAttempts": 2}]}]))
    [result] = load_runs(run)[0].report.tests.values()
    assert (result.state, result.attempts) == ("passed", 2)


def test_knet_conformance_table_compares_two_runs(tmp_path: Path):
    failed = '<testcase name="[It] a" status="failed" time="1"><failure/></testcase>'
    run = write_run(tmp_path / "knet", "quick", failed)
    base = write_run(tmp_path / "kube-proxy", "quick", '<testcase name="[It] a" status="passed" time="1"/>')
    out = subprocess.run([sys.executable, "-m", "operators.cli", "conformance", "table", str(run), str(base)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "| quick | 0 | 1 | 0 | 1 | 5s | 1 | 0 | 0 | 5s |" in out.stdout and "| a | failed | passed |" in out.stdout


def test_a_directory_without_a_report_is_an_error(tmp_path: Path):
    out = subprocess.run([sys.executable, "-m", "operators.cli", "conformance", "table", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no run" in out.stderr


FAKE_GINKGO = """#!/bin/sh
# stands in for `ginkgo --procs=2 ... e2e.test -- --report-dir=D ...`: one passed, one failed spec
for a in "$@"; do case $a in --report-dir=*) d=${a#--report-dir=};; esac; done
echo "Will run 2 of 3206 specs"
cat > "$d/junit_01.xml" <<XML
<testsuite name="Kubernetes e2e suite" time="3">
  <testcase name="[It] [sig-network] Services a" status="passed" time="1"/>
  <testcase name="[It] [sig-network] Services b" status="failed" time="2">
    <failure>[FAILED] no endpoints</failure></testcase>
</testsuite>
XML
exit 1
"""


def test_a_run_keeps_its_output_and_record_and_fails_with_its_tests(tmp_path: Path, capsys):
    bins = tmp_path / "bin"
    bins.mkdir()
    (bins / "ginkgo").write_text(FAKE_GINKGO)
    (bins / "e2e.test").write_text("#!/bin/sh\necho v1.37.1\n")
    for f in bins.iterdir():
        f.chmod(0o755)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters: [{cluster: {server: 'https://172.18.0.2:6443'}}]\n")
    plan = make_plan(SUITES["services-dns"], [], kubeconfig, tmp_path / "run", bin_dir=bins, kubectl="/k")
    assert execute(plan, [], echo=False) == 1
    meta = json.loads((tmp_path / "run/run.json").read_text())
    assert (meta["suite"], meta["exit_code"], meta["server"], meta["e2e_version"]) == \
        ("services-dns", 1, "https://172.18.0.2:6443", "v1.37.1")
    assert (tmp_path / "run/e2e.log").read_text() == "Will run 2 of 3206 specs\n"
    assert "| services-dns | 1 | 1 | 0 | 2 | 3s |" in capsys.readouterr().out


def test_compare_tables_knet_against_the_baseline_side(tmp_path: Path):
    failed = '<testcase name="[It] a" status="failed" time="1"><failure/></testcase>'
    write_run(tmp_path / "knet/quick", "quick", failed)
    write_run(tmp_path / "baseline/quick", "quick", '<testcase name="[It] a" status="passed" time="1"/>')
    assert "| a | failed | passed |" in compare.table(tmp_path).splitlines()


def test_a_suite_the_baseline_cannot_run_here_is_named_with_its_reason(tmp_path: Path):
    write_run(tmp_path / "knet/netpol", "netpol", '<testcase name="[It] a" status="passed" time="1"/>')
    (tmp_path / "baseline").mkdir()
    assert "- baseline did not run netpol: kube-network-policies queues" in compare.table(tmp_path)
