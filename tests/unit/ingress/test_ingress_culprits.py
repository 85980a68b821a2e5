"""Finding the Ingresses nginx refuses (bisecting the changed ones), and what their Events may say."""

from __future__ import annotations

from operators.ingress.culprits import isolate, redact


def _nginx(bad: set[str], tried: list[frozenset[str]] | None = None):
    """A stand-in `nginx -t` that refuses any config holding one of `bad`."""
    def check(keys: frozenset[str]) -> str | None:
        (tried if tried is not None else []).append(keys)
        return f"refused {sorted(keys & bad)}" if keys & bad else None
    return check


def test_culprits_are_found_and_the_rest_served() -> None:
    changed = [f"ns/i{n}" for n in range(16)]
    served, culprits = isolate(changed, ["ns/old"], _nginx({"ns/i3", "ns/i11"}), "refused")
    assert set(culprits) == {"ns/i3", "ns/i11"} and served == {"ns/old", *changed} - set(culprits)


def test_one_culprit_among_many_takes_few_checks() -> None:
    tried: list[frozenset[str]] = []
    isolate([f"ns/i{n}" for n in range(64)], [], _nginx({"ns/i40"}, tried), "refused")
    assert len(tried) <= 2 * 6 + 1


def test_an_unchanged_culprit_is_found_too() -> None:
    served, culprits = isolate(["ns/new"], ["ns/old", "ns/weak"], _nginx({"ns/weak"}), "refused")
    assert culprits == {"ns/weak": "refused ['ns/weak']"} and served == {"ns/old", "ns/new"}


def test_nothing_accepted_is_no_ones_fault() -> None:
    assert isolate(["ns/a"], ["ns/b"], lambda keys: "broken", "broken") is None


def test_redact_keeps_only_the_ingress_own_certificate() -> None:
    error = ('2026/12/07 10:00:00 [emerg] 12#12: SSL_CTX_use_certificate("/c/mine_tls_1.pem") failed, '
             'SSL_CTX_use_certificate("/c/theirs_tls_2.pem")\nnginx: configuration file /p/nginx.conf.test test failed')
    assert redact(error, "/c", ["mine_tls_1.pem"]) == (
        '[emerg] SSL_CTX_use_certificate("/c/mine_tls_1.pem") failed, SSL_CTX_use_certificate("<another certificate>")')
