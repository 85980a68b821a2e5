"""The per-node agent (`knet agent`): informers -> the proxy's, netpol's and CNI mode's pure cores -> `nft -f`,
netlink, conntrack, files, reports. See README.md.
"""
