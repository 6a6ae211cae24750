"""The standard's JSON shapes, identifiers and error bodies."""
