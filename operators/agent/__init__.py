"""The per-node agent (`knet agent`): Kopf watches -> the proxy's pure core -> `nft -f`, conntrack, reports.

`operator` wires Kopf, `proxy` is the sync loop; `schedule`, `conntrack`, `events.to_report` and the
bodies in `servers` are the pure decisions it makes, each with unit tests.
"""
