"""The one error root of NoETL and its subclasses.

    NoetlError                      code, retryable, message
    ├── PlaybookError               a playbook that cannot be loaded or validated
    │   (file, line, YAML path)
    ├── TemplateError               a template that fails to parse or render
    ├── ToolError                   a tool call failed (kind, code, retryable)
    ├── PayloadError                a payload object is missing, corrupt or unreadable
    ├── CatalogError                an unknown catalog path or version
    ├── KeychainError               an unknown alias, an unreadable secret or credential
    ├── ExecutionNotFound           no execution with that id
    ├── WorkloadError               a workload that is not a JSON object
    ├── InputLimitError             input past NOETL_MAX_DEPTH / NOETL_MAX_NODES, refused
    │                               before it is built
    ├── ConfigError                 a missing or malformed setting
    ├── LimitError                  a record over the event log's size limits
    └── ClaimConflict (retryable)   another worker holds a live lease on the command

Every error has a stable `code` (a short snake_case name) so that callers, policies and
exit codes can match on it without parsing messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class NoetlError(Exception):
    code = "noetl_error"
    retryable = False
    captured = ""  # a failed tool call: what its code printed first (`noetl logs`)

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
        }

    @property
    def kind(self) -> str:
        return "noetl"


@dataclass(frozen=True)
class SourceLocation:
    """Where in a playbook file something is: file, 1-based line, YAML path."""

    file: str
    line: int | None
    path: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}" if self.path else where


class PlaybookError(NoetlError):
    code = "invalid_playbook"

    def __init__(self, problems: list[tuple[SourceLocation, str]]):
        self.problems = problems
        lines = [f"{loc}: {msg}" for loc, msg in problems]
        super().__init__("\n".join(lines))

    @property
    def kind(self) -> str:
        return "playbook"


class TemplateError(NoetlError):
    code = "template_error"

    @property
    def kind(self) -> str:
        return "template"


class NoArcMatched(TemplateError):
    """`next.spec.on_no_match: fail` and no arc matched a successful step: the step fails
    with it (a TemplateError so the block records it as the step's failure, as it does a
    `when` that fails to render)."""

    code = "no_arc_matched"

    @property
    def kind(self) -> str:
        return "routing"


class ToolError(NoetlError):
    """A tool call that failed; `tool_kind` names the tool, `details` its own fields."""

    code = "tool_error"

    def __init__(
        self,
        message: str,
        *,
        tool_kind: str,
        code: str | None = None,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
        kind: str | None = None,
    ):
        super().__init__(message, code=code, retryable=retryable)
        self.tool_kind = tool_kind
        self.details = details or {}
        self.error_kind = kind

    @property
    def kind(self) -> str:
        """The tool's kind, unless the error has a class of its own (an http 5xx answer is
        `server_error`, as upstream names it)."""
        return self.error_kind or self.tool_kind

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(self.details)
        return out


class PayloadError(NoetlError):
    code = "payload_error"

    @property
    def kind(self) -> str:
        return "payload"


class CatalogError(NoetlError):
    code = "catalog_error"

    @property
    def kind(self) -> str:
        return "catalog"


class KeychainError(NoetlError):
    code = "keychain_error"

    @property
    def kind(self) -> str:
        return "keychain"


class ExecutionNotFound(NoetlError):
    code = "execution_not_found"


class WorkloadError(NoetlError):
    code = "invalid_workload"


class InputLimitError(NoetlError):
    """JSON input (a workload, a callback or request body) nested past `NOETL_MAX_DEPTH`,
    refused before it is parsed. A playbook's YAML past a limit is a `PlaybookError`,
    which names file and line like every other problem of a playbook."""

    code = "input_limit"


class ConfigError(NoetlError):
    code = "invalid_config"


class LimitError(NoetlError):
    """A batch of entries over the event log's limits (the same on every backend)."""

    code = "over_limit"

    @property
    def kind(self) -> str:
        return "limit"


class ClaimConflict(NoetlError):
    code = "claim_conflict"
    retryable = True
