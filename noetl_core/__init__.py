"""NoETL playbooks as event-sourced atomic blocks: embedded default and Google Cloud."""
