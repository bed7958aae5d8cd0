"""The playbook language: model, lenient-form normalizer, validator, YAML loader."""

from .loader import LoadedPlaybook, load_file, load_text
from .model import Arc, Loop, Playbook, Policy, PolicyRule, RuleAction, Step, Task, Tool

__all__ = [
    "Arc",
    "LoadedPlaybook",
    "Loop",
    "Playbook",
    "Policy",
    "PolicyRule",
    "RuleAction",
    "Step",
    "Task",
    "Tool",
    "load_file",
    "load_text",
]
