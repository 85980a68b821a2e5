"""Which Ingresses make `nginx -t` refuse a config, and what each may be told about it.

The model refuses what knet knows nginx would refuse; this is the net under it. When nginx still
refuses a config, the controller serves the Ingresses that were in the last good config and adds the
changed ones back in halves (`isolate`): a half that nginx accepts stays, a refused one is split again
until each refused Ingress stands alone. With k culprits among n changed Ingresses that is about
2k·log2(n) runs of `nginx -t`, and one when nothing is wrong.

nginx's message names files and words of the whole config, which holds every tenant's certificates;
`redact` keeps only what an Event on one Ingress may carry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Check = Callable[[frozenset[str]], "str | None"]  # the Ingresses to serve -> None, or why nginx refuses them


def isolate(changed: Sequence[str], unchanged: Sequence[str], check: Check,
            refused: str) -> tuple[frozenset[str], dict[str, str]] | None:
    """(the Ingresses to serve, culprit -> nginx's message) when the config of all of them was `refused`;
    None when nginx refuses even a config without Ingresses (no tenant's fault).

    The unchanged ones were accepted before; if nginx now refuses even them (a Secret changed, or the
    controller restarted), every Ingress is a suspect and the search starts from none."""
    served = frozenset(unchanged)
    if check(served) is not None:
        if not served:
            return None
        changed, served = [*unchanged, *changed], frozenset()
        if check(served) is not None:
            return None
    culprits: dict[str, str] = {}

    def add(group: Sequence[str], known_bad: str | None = None) -> None:
        nonlocal served
        error = known_bad if known_bad is not None else check(served | frozenset(group))
        if error is None:
            served |= frozenset(group)
        elif len(group) == 1:
            culprits[group[0]] = error
        else:
            add(group[:len(group) // 2])
            add(group[len(group) // 2:])

    if changed:
        add(changed, refused)  # served and changed together are all of them: known to be refused
    return served, culprits


_NOISE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d |\d+#\d+: |^nginx: configuration file .* test failed$", re.M)


def redact(error: str, certificate_dir: str, own: Sequence[str]) -> str:
    """nginx's message without timestamps and process ids, where every certificate file but the Ingress's
    own (`own`: file names) is replaced by "<another certificate>"."""
    def name(m: re.Match[str]) -> str:
        return m[0] if m[1] in own else "<another certificate>"

    text = re.sub(re.escape(certificate_dir.rstrip("/")) + r"/([^\"'\s)]+)", name, error)
    return "; ".join(line.strip() for line in _NOISE.sub("", text).splitlines() if line.strip())
