"""The gateway: authenticated HTTP over any runtime (app.py), and its tokens (tokens.py)."""
