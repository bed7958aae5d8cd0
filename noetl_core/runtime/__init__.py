"""The block runtime: claim, hydrate, execute, persist, record, settle, publish."""
