"""The node's background services: timers and queues that NodeRole starts and stops (the
outbox, the group check, the directory refresher, certificate renewal, housekeeping, the event
feeds of bridged systems).  Each works through the handlers' store and clients like a request
does."""
