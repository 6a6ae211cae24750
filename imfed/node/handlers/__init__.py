"""The node's application layer: one handler per concern, each the one implementation of its
operations, whoever asks (the client API, the interconnection interface, the bridge API to
come).  A handler takes parsed arguments and the acting user or calling server, checks what
they may touch, runs its changes as units of work (imfed/node/store/unit.py) and makes the remote
calls of live operations (imfed/node/clients/remote.py); it knows nothing of HTTP."""
