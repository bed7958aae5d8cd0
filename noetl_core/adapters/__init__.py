"""Backends for the runtime's ports. Embedded: SQLite log, local files, in-process bus."""
