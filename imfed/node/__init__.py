"""The node role: an IM server's interconnection service."""
