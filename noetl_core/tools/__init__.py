"""Tools: one module per tool kind, found through `registry`."""
