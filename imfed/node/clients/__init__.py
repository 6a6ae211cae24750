"""What the node asks of others: the federation's servers (remote.py, typed answers and one
error; reach.py, whether and where a server may be called; downloads.py, files fetched and
checked), the management server (join.py: apply and renew) and a bridged system
(bridge_lookup.py)."""
