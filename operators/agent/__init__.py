"""The per-node agent (`knet agent`): informers -> the proxy's, netpol's and CNI mode's pure cores -> `nft -f`,
netlink, conntrack, files, reports.

`operator` wires the informers and Kopf, `proxy`, `netpol` and `cni` (with `--cni`) are the sync loops;
`schedule`, `conntrack`, `events.to_report` and the bodies in `servers` are the pure decisions they make, each
with unit tests (CNI mode's are in `operators.cni`).
"""
