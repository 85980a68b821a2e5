"""Each supported annotation parses to a typed value or is rejected with a message; snippets are refused."""

from __future__ import annotations

import pytest

from operators.ingress.annotations import PREFIX, Affinity, Annotations, Canary, Cors, parse_annotations


def parse(**values: str) -> tuple[Annotations, list[str]]:
    return parse_annotations({PREFIX + k.replace("_", "-"): v for k, v in values.items()})


@pytest.mark.parametrize(("name", "value", "attr", "expected"), [
    ("rewrite-target", "/$1/x?a=b", "rewrite_target", "/$1/x?a=b"),
    ("use-regex", "true", "use_regex", True),
    ("app-root", "/app", "app_root", "/app"),
    ("ssl-redirect", "false", "ssl_redirect", False),
    ("force-ssl-redirect", "True", "force_ssl_redirect", True),
    ("backend-protocol", "grpcs", "backend_protocol", "GRPCS"),
    ("proxy-body-size", "8m", "proxy_body_size", "8m"),
    ("proxy-connect-timeout", "15", "proxy_connect_timeout", 15),
    ("proxy-read-timeout", "120s", "proxy_read_timeout", 120),
    ("proxy-next-upstream", "error http_502", "proxy_next_upstream", ("error", "http_502")),
    ("proxy-next-upstream-tries", "0", "proxy_next_upstream_tries", 0),
    ("whitelist-source-range", "10.1.2.3/8, ::1/128", "allow_source_ranges", ("10.0.0.0/8", "::1/128")),
    ("denylist-source-range", "192.0.2.0/24", "deny_source_ranges", ("192.0.2.0/24",)),
    ("limit-rps", "5", "limit_rps", 5),
    ("limit-connections", "7", "limit_connections", 7),
    ("load-balance", "ewma", "load_balance", "least_conn"),
    ("upstream-hash-by", "$remote_addr$http_x_user", "upstream_hash_by", "$remote_addr$http_x_user"),
    ("permanent-redirect", "https://a.example.com/x", "permanent_redirect", "https://a.example.com/x"),
    ("temporal-redirect", "http://a.example.com:8080", "temporal_redirect", "http://a.example.com:8080"),
    ("upstream-vhost", "svc.internal:8443", "upstream_vhost", "svc.internal:8443"),
    ("custom-http-errors", "503,404 , 404", "custom_http_errors", (404, 503)),
])
def test_valid(name: str, value: str, attr: str, expected: object) -> None:
    parsed, problems = parse_annotations({PREFIX + name: value})
    assert getattr(parsed, attr) == expected and problems == []


@pytest.mark.parametrize(("name", "value"), [
    ("rewrite-target", "/x;"), ("rewrite-target", "/$host"), ("rewrite-target", "relative"),
    ("use-regex", "sure"), ("app-root", "/a b"), ("backend-protocol", "FCGI"), ("proxy-body-size", "1t"),
    ("proxy-connect-timeout", "0"), ("proxy-read-timeout", "1h"), ("proxy-next-upstream", "off error"),
    ("proxy-next-upstream-tries", "101"), ("limit-rps", "0"), ("load-balance", "random"),
    ("upstream-hash-by", "$request_uri;"), ("upstream-hash-by", "$unknown_var"), ("upstream-hash-by", "text"),
    ("permanent-redirect", "javascript:alert(1)"), ("permanent-redirect", "https://a.com/$uri"),
    ("upstream-vhost", "a.com:99999"), ("custom-http-errors", "200"),
])
def test_rejected(name: str, value: str) -> None:
    parsed, problems = parse_annotations({PREFIX + name: value})
    assert parsed == Annotations() and len(problems) == 1 and name in problems[0]


def test_unreadable_access_lists_deny_everything() -> None:
    parsed, problems = parse(allowlist_source_range="10.0.0.0/8,nope")
    assert parsed.deny_all and "denied" in problems[0]


def test_allowlist_wins_over_whitelist() -> None:
    parsed, problems = parse(allowlist_source_range="10.0.0.0/8", whitelist_source_range="192.0.2.0/24")
    assert parsed.allow_source_ranges == ("10.0.0.0/8",) and "whitelist-source-range is ignored" in problems[0]


def test_snippets_and_unknown_annotations() -> None:
    _, problems = parse_annotations({PREFIX + "configuration-snippet": "x", PREFIX + "server-snippet": "y",
                                     PREFIX + "auth-url": "http://a", "other.io/thing": "ignored silently"})
    assert sorted(problems) == [
        "annotation auth-url is not supported by knet; ignored",
        "annotation configuration-snippet is refused: knet never copies raw configuration into nginx.conf",
        "annotation server-snippet is refused: knet never copies raw configuration into nginx.conf",
    ]


def test_groups() -> None:
    parsed, problems = parse(affinity="cookie", session_cookie_max_age="60", canary="true",
                             canary_by_header="X-Canary", canary_weight="30", enable_cors="true",
                             cors_allow_origin="https://a.example.com, https://*.b.example.com")
    assert not problems
    assert parsed.affinity == Affinity("INGRESSCOOKIE", "", 60)
    assert parsed.canary == Canary("X-Canary", "", "", 30)
    assert isinstance(parsed.cors, Cors) and parsed.cors.origins == ("https://a.example.com", "https://*.b.example.com")
    assert parsed.cors.credentials and "OPTIONS" in parsed.cors.methods


def test_group_settings_without_their_switch() -> None:
    parsed, problems = parse(session_cookie_name="x", canary_weight="10", cors_allow_origin="*")
    assert parsed == Annotations() and len(problems) == 3 and all("has no effect" in p for p in problems)
