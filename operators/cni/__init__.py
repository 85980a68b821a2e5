"""knet's CNI mode, pure core: what kindnet does on a kind cluster created with `disableDefaultCNI: true`.

From the Nodes' views (`operators.kube.services.Node`: name, InternalIPs, podCIDRs) and the cluster's pod
ranges, `plan.plan` decides everything one node needs for pod networking, and the agent's shell
(`operators.agent.cni`) applies it:
- `conflist`: the node's CNI configuration (ptp + host-local over its podCIDRs, then portmap), which the
  container runtime reads to wire each pod (kindnet's template, under the name `knet`);
- `routes`: a route to every other node's podCIDRs via that node's InternalIP of the same family;
- `masquerade`: `table inet knet-cni`, masquerading pod traffic that leaves the pod ranges (kindnet's
  ip-masq-agent), since the proxy masquerades only Service traffic.
`offline.render` runs the same code on YAML files (`knet render cni`).
"""
