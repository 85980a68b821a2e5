"""Cluster DNS: a record store (Kubernetes DNS schema 1.1.0), knet's own DNS server, and CoreDNS Corefiles.

config.DNSConfig (the custom resource) -> records.RecordStore (pure, incremental) -> server.DNSServer
(asyncio UDP/TCP, forwarding, metrics) and corefile.render (the same behaviour for CoreDNS);
offline runs them on YAML files.
"""
