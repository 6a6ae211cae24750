"""The XMPP gateway (docs/bridge.md): imfed as an external component (XEP-0114) of an XMPP
server, so that server's users are this node's users and talk with every T/CIIA server."""
