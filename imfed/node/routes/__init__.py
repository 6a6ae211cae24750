"""The node's HTTP interfaces: each route parses and checks its input, calls one handler
(imfed/node/handlers/) and writes the answer.  No route touches the store or another server
itself."""
