"""knet: Kubernetes networking (service proxy, NetworkPolicy, DNS, Ingress) as Kopf operators."""

__version__ = "0.1.0"
