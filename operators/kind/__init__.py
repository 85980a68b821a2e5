"""A real kind cluster on this machine: kind's podman provider in a network namespace of knet's own,
with a node image and every container image built offline (see README.md)."""
