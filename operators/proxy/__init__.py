"""The Service proxy's pure core: Service/EndpointSlice/Node views -> per-node model -> rules text.

Entry points for the agent: `model.build_model`, `nftables.build_ruleset` with `operators.nft.table.diff`,
`nftables.render_full` / `render_cleanup`, `iptables.render` and `iptables.JUMPS`; `offline.render`
for `knet render proxy`.
"""
