"""The shim's mount plan: a private /tmp must not hide what the container runs from."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from operators.devcluster.podworker import shim_argv

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")


def run(plan: dict, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shim_argv(list(cmd)), env={"KNET_SHIM": json.dumps(plan)}, capture_output=True, text=True, timeout=30
    )


def test_private_tmp_keeps_listed_paths_and_hides_the_rest(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as host_dir:
        kept = Path(host_dir) / "kept"
        kept.mkdir()
        (kept / "file").write_text("still here\n")
        (Path(host_dir) / "hidden").write_text("host tmp")
        private = tmp_path / "pod-tmp"
        private.mkdir()
        plan = {
            "hostname": "pod-x",
            "mounts": [[str(private), "/tmp", False]],
            "keep": [str(kept)],
            "env": {"PATH": "/usr/bin:/bin"},
            "workdir": "/",
        }
        out = run(
            plan, "sh", "-c", f"cat {kept}/file; hostname; test -e {host_dir}/hidden && echo leaked; touch /tmp/mine"
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["still", "here", "pod-x"]
        assert (private / "mine").exists() and not Path("/tmp/mine").exists()


def test_a_missing_command_fails_with_the_shim_line() -> None:
    out = run({"mounts": [], "env": {"PATH": "/usr/bin"}}, "/no/such/binary")
    assert out.returncode == 128 and out.stderr.startswith("knet-shim: cannot start")
