"""The Service proxy's pure core: Service/EndpointSlice/Node views -> per-node model -> rules text.

Entry points for the agent: `model.build_model`, `nftables.render_full` / `render_incremental` /
`render_cleanup`, `iptables.render` and `iptables.JUMPS`; `offline.render` for `knet render proxy`.
"""
