"""Kubernetes' own e2e suite as the judge, its quick subset on knet (operators/conformance, `--suite quick`:
Services' endpoint and NodePort conformance tests, ExternalName through the cluster DNS, a default-deny
NetworkPolicy); `make conformance` runs the full suites."""

from __future__ import annotations

import subprocess

from tests.e2e.harness import KNET


def test_the_quick_upstream_subset_passes_on_knet(kind, tmp_path):
    proc = subprocess.run([*KNET, "conformance", "run", "--kubeconfig", kind.kubeconfig, "--suite", "quick",
                           "--quiet", "--report-dir", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"e2e.test quick suite failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
