"""Tool declarations: per kind, the fields never rendered as templates (`RAW_FIELDS`)
and `validate(fields)`, returning `(sub-path, message)` problems.

Validating a playbook reads only these modules (through `tools.registry.spec`), so a
process that registers and starts playbooks without running them (the gateway) loads
no tool implementation, nor the clients those import. Each tool module in
`noetl_core.tools` imports its declaration from here; nothing here imports a tool.
"""
