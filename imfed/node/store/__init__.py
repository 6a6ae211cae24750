"""The node's store: the queries and writes of each table group, as functions of a unit of
work (unit.py), answering typed rows.  No rule of who may do what and no HTTP error lives
here: the handlers (imfed/node/handlers/) check, in the same unit of work, and then call these.
A write here stores the change together with the events it shows local users (events.emit)
and the calls it owes other servers (outbox.enqueue)."""
