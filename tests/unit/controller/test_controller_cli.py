"""`knet controller` options: the CoreDNS ConfigMap reference and refusing bad addresses before starting."""

from __future__ import annotations

import pytest

from operators.cli import main
from operators.controller.cli import coredns_ref


def test_coredns_configmap_reference() -> None:
    assert coredns_ref("kube-system/coredns") == ("kube-system", "coredns")
    assert coredns_ref("") is None
    for bad in ("coredns", "/coredns", "kube-system/", "a/b/c"):
        with pytest.raises(ValueError, match="NAMESPACE/NAME"):
            coredns_ref(bad)


@pytest.mark.parametrize("args", [["--coredns-configmap", "nope"], ["--health-addr", "nowhere"]])
def test_bad_options_fail_before_connecting(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["controller", "--api-server", "https://127.0.0.1:1", *args])
    assert e.value.code == 2 and "error:" in capsys.readouterr().err
