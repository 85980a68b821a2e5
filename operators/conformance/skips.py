"""conformance/skips.yaml -> the tests a run leaves out, as one ginkgo skip regex and as reasons. Pure.

Ginkgo searches every --skip regex in "<suite description> <spec text>", unanchored, with Go's RE2.
The same expressions are searched here with Python's re to say which entry took a test out, so an
entry may only use what both read alike (brackets, alternation, `.*`, escapes of punctuation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

# Ginkgo's metacharacters: escaping only these keeps the generated regex readable in a command line.
_META = set("\\.+*?()|[]{}^$")


class SkipsError(ValueError):
    """skips.yaml is malformed: a run with a silently dropped skip would report false failures."""


def literal(text: str) -> str:
    """`text` as a regex that matches it literally, in RE2 and Python alike."""
    return "".join("\\" + c if c in _META else c for c in text)


def exact(name: str) -> str:
    """A regex for one test's full name: ginkgo prefixes the suite's description and a space, so the
    name is anchored at the end and at a space (or the start, for the names listed here)."""
    return f"(?:^| ){literal(name)}$"


@dataclass(frozen=True)
class Skip:
    """One entry: a regex (exact names already turned into one) and why the tests it matches are left out."""

    regex: str
    reason: str
    label: str  # what the entry said: the name, or the regex as written

    def matches(self, name: str) -> bool:
        return re.search(self.regex, name) is not None


def parse_skips(data: Mapping[str, Any] | None) -> list[Skip]:
    """The entries of a loaded skips.yaml, in order; SkipsError names the first bad one."""
    entries = (data or {}).get("skips") or []
    if not isinstance(entries, list):
        raise SkipsError("`skips` must be a list")
    out: list[Skip] = []
    for i, entry in enumerate(entries):
        where = f"skips[{i}]"
        if not isinstance(entry, Mapping):
            raise SkipsError(f"{where}: not a mapping")
        reason = str(entry.get("reason") or "").strip()
        if not reason:
            raise SkipsError(f"{where}: no reason")
        keys = [k for k in ("name", "names", "regex") if k in entry]
        unknown = set(entry) - {"name", "names", "regex", "reason"}
        if len(keys) != 1 or unknown:
            raise SkipsError(f"{where}: needs exactly one of name, names, regex (and reason); has {sorted(entry)}")
        if "regex" in entry:
            pattern = str(entry["regex"])
            try:
                re.compile(pattern)
            except re.error as e:
                raise SkipsError(f"{where}: regex {pattern!r}: {e}") from e
            out.append(Skip(pattern, reason, pattern))
            continue
        names = [entry["name"]] if "name" in entry else entry["names"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise SkipsError(f"{where}: names must be a non-empty list of test names")
        out.extend(Skip(exact(n), reason, n) for n in names)
    return out


def load_skips(text: str) -> list[Skip]:
    """Parse skips.yaml's text."""
    return parse_skips(yaml.safe_load(text))


def skip_regex(skips: Iterable[Skip]) -> str:
    """One regex for ginkgo's --skip that matches what any entry matches ("" when there are none)."""
    return "|".join(f"(?:{s.regex})" for s in skips)


def reason_for(name: str, skips: Iterable[Skip]) -> Skip | None:
    """The first entry that takes `name` out, if any."""
    return next((s for s in skips if s.matches(name)), None)


def unused(skips: Iterable[Skip], names: Iterable[str]) -> list[Skip]:
    """Entries that match none of `names` (a renamed upstream test leaves its skip behind)."""
    names = list(names)
    return [s for s in skips if not any(s.matches(n) for n in names)]
