"""Bounded work: the limits a runaway playbook meets, each a setting (settings.py).

- Blocks on one path (`NOETL_MAX_PATH_BLOCKS`): a command's frame carries how many blocks
  ran before it on its path (`engine.decide.depth`), so an endless cycle stops at the
  limit and the check reads nothing.
- Sub-playbook depth (`NOETL_MAX_PLAYBOOK_DEPTH`): an execution's depth (0 when started
  by itself, its parent's + 1) is in its start entry; a step that would start a child
  deeper than the limit is refused, so a playbook that calls itself stops there.
- Children per parent (`NOETL_MAX_CHILDREN`): a step that would start one more child
  than the limit allows its execution is refused; the count is one query over the
  execution's child `pending` entries (at most the limit of them), made only when a
  step starts a child. Children starting at the same moment may pass it together.

A refused command is closed unrun with `{kind: limit, code, message}`, the message
naming the limit and its setting. That fails its execution (no recovery arc catches a
limit), and a failed child fails its parent's step in turn, so the whole tree ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import engine
from ..engine import entries as E
from ..engine.decide import depth
from ..engine.entries import Command, Entry
from ..settings import Settings

if TYPE_CHECKING:
    from .block import Runtime
    from .executions import Execution


def on_path(settings: Settings, command: Command) -> dict[str, Any] | None:
    """The error of a command its path's limit refuses, else None."""
    ran = depth(command.frame)
    if ran < settings.max_path_blocks:
        return None
    return _error(
        "max_path_blocks",
        f"step {command.step}: not run: {ran} blocks ran before it on this path, "
        f"the limit NOETL_MAX_PATH_BLOCKS={settings.max_path_blocks}",
    )


def for_child(rt: Runtime, ex: Execution, command: Command) -> dict[str, Any] | None:
    """The error of a step whose sub-playbook a limit refuses, else None."""
    settings = rt.settings
    if ex.depth + 1 > settings.max_playbook_depth:
        return _error(
            "max_playbook_depth",
            f"step {command.step}: a sub-playbook {ex.depth + 1} deep passes the limit "
            f"NOETL_MAX_PLAYBOOK_DEPTH={settings.max_playbook_depth}",
        )
    started = rt.log.count(ex.id, "pending", group=E.CHILDREN)
    if started >= settings.max_children:
        return _error(
            "max_children",
            f"step {command.step}: execution {ex.id} started {started} sub-playbooks, "
            f"the limit NOETL_MAX_CHILDREN={settings.max_children}",
        )
    return None


def refuse(
    rt: Runtime,
    ex: Execution,
    command: Command,
    attempt: int,
    error: dict[str, Any],
    claim: list[Entry],
) -> None:
    """Close the command unrun with the limit's error, halting its execution."""
    rt.commit(ex, [*claim, engine.close(command, attempt, "error", error, rt.clock.now())])


def _error(code: str, message: str) -> dict[str, Any]:
    return {"kind": "limit", "code": code, "message": message, "retryable": False}
