"""The pure engine: decisions from events, no I/O, no clock, no random ids."""

from .decide import Outcome, Scene, close, join, record, start, terminal
from .loops import (
    activate,
    iteration_command,
    iteration_done_ids,
    loop_done,
    record_iteration,
)

__all__ = [
    "Outcome",
    "Scene",
    "activate",
    "close",
    "iteration_command",
    "iteration_done_ids",
    "join",
    "loop_done",
    "record",
    "record_iteration",
    "start",
    "terminal",
]
