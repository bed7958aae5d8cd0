"""The local Google Cloud stack: emulators, the Secret Manager emulator, supervised functions.

See ``emulators/README.md``. Run from the repository root: ``python -m emulators.stack up``.
"""
