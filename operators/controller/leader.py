"""Whether this replica is the active one, from the ClusterKopfPeering object's status. Pure.

Kopf pauses the watches of a replica that sees a live peer of higher or equal priority, but the
controller's own sync loop is not a Kopf handler, so it asks the same question before writing
anything: the answer is Kopf's rule applied to the peers the peering object lists.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

DEFAULT_LIFETIME = 60  # seconds Kopf assumes for a peer that does not say


def _seen(peer: Mapping[str, Any]) -> datetime.datetime | None:
    text = peer.get("lastseen")
    if not isinstance(text, str):
        return None
    try:
        seen = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return seen if seen.tzinfo else seen.replace(tzinfo=datetime.UTC)


def is_active(status: Mapping[str, Any] | None, identity: str, priority: int, now: datetime.datetime) -> bool:
    """True when no other live peer has a priority at least ours (Kopf's pause rule, from the other side)."""
    for peer_id, peer in (status or {}).items():
        if peer_id == identity or not isinstance(peer, Mapping):
            continue
        seen = _seen(peer)
        lifetime = peer.get("lifetime") if isinstance(peer.get("lifetime"), int) else DEFAULT_LIFETIME
        if seen is None or seen + datetime.timedelta(seconds=lifetime) <= now:
            continue  # dead: Kopf ignores it too
        other = peer.get("priority")
        if isinstance(other, int) and other >= priority:
            return False
    return True
