"""`knet agent` refuses what it cannot run with one clear line, before touching anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.agent import operator
from operators.cli import main


def agent(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["agent", *args])
    return int(exit_.value.code or 0), capsys.readouterr().err.strip()


def test_needs_a_node_name_and_an_api_server(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    monkeypatch.delenv("KNET_API_SERVER", raising=False)
    assert agent(capsys) == (2, "error: no node name: set NODE_NAME (downward API spec.nodeName) or pass --node-name")
    code, err = agent(capsys, "--node-name", "n1")
    assert code == 2 and "KNET_API_SERVER" in err


def test_refuses_bad_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = agent(capsys, "--node-name", "n1", "--min-sync-period", "20", "--max-sync-period", "10")
    assert code == 2 and "sync periods must satisfy" in err
    code, err = agent(capsys, "--node-name", "n1", "--metrics-addr", "10249")
    assert code == 2 and "'10249' is not HOST:PORT" in err
    code, err = agent(capsys, "--node-name", "n1", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml" in err


def test_cni_mode_from_the_chart_environment_or_the_flags(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[operator.Options] = []

    async def run(options: operator.Options) -> None:
        seen.append(options)

    monkeypatch.setattr(operator, "run", run)
    monkeypatch.delenv("KNET_AGENT_DAEMONSET", raising=False)
    monkeypatch.setenv("KNET_CNI", "true")
    monkeypatch.setenv("KNET_CNI_CONFLIST", "/host/cni/10-knet.conflist")
    agent(capsys, "--node-name", "n1")
    agent(capsys, "--node-name", "n1", "--no-cni", "--cni-mtu", "1450")
    assert [(o.cni, o.cni_conflist, o.cni_mtu) for o in seen] == [
        (True, "/host/cni/10-knet.conflist", None), (False, "/host/cni/10-knet.conflist", 1450)]


def test_refuses_a_pod_mtu_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = agent(capsys, "--node-name", "n1", "--cni", "--cni-mtu", "9")
    assert code == 2 and "--cni-mtu '9' is not an MTU" in err


def test_refuses_to_run_with_every_side_off(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = agent(capsys, "--node-name", "n1", "--no-proxy", "--no-network-policy", "--no-cni")
    assert code == 2 and "nothing to do" in err
