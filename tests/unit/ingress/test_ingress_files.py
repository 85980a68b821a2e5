"""The files the controller writes for nginx: TLS keys are readable by their owner alone, whatever was there."""

from __future__ import annotations

import stat
from pathlib import Path

from operators.ingress import files


def test_key_file_is_0600_even_over_a_world_readable_tmp(tmp_path: Path) -> None:
    left = tmp_path / ".tenant.pem.tmp"
    left.write_text("old")
    left.chmod(0o644)
    files.write_private(tmp_path / "tenant.pem", b"KEY")
    assert stat.S_IMODE((tmp_path / "tenant.pem").stat().st_mode) == 0o600


def test_tmp_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / ".tenant.pem.tmp").symlink_to(target)
    files.write_private(tmp_path / "tenant.pem", b"KEY")
    assert target.read_text() == "keep" and (tmp_path / "tenant.pem").read_bytes() == b"KEY"
