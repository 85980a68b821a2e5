"""The per-node agent (`knet agent`): informers -> the proxy's and netpol's pure cores -> `nft -f`, conntrack,
reports.

`operator` wires the informers and Kopf, `proxy` and `netpol` are the sync loops; `schedule`, `conntrack`,
`events.to_report` and the bodies in `servers` are the pure decisions they make, each with unit tests.
"""
