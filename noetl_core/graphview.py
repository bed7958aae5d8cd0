"""A playbook's step graph as text for a diagram tool: Mermaid (`flowchart`) or Graphviz
`dot` (`noetl graph`, `noetl validate --graph`).

Each step is a node labelled with its name and tool kind (a pipeline lists its tasks);
a loop is marked `loop over <in>` (or `cursor loop`, with its mode), a sub-playbook call
`playbook: <path>` in a subroutine shape; the entry step gets a `start` marker, arcs to
`end` an `end` node. Each arc carries its `when` (none: it always fires); back-edges
(a cycle back to an earlier step) are dashed, a join (two or more steps arriving) is a
double circle in dot and a hexagon in Mermaid.
"""

from __future__ import annotations

import json
from typing import Any

from .engine import graph as G
from .playbook.loader import LoadedPlaybook
from .playbook.model import Step

MAX_LABEL = 60


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _tool_line(step: Step) -> str:
    if isinstance(step.tool, list):
        return "pipeline: " + ", ".join(f"{t.name} ({t.kind})" for t in step.tool)
    if step.tool.kind == "playbook":
        return f"playbook: {step.tool.fields().get('path', '?')}"
    return step.tool.kind


def _loop_line(step: Step) -> str | None:
    loop = step.loop
    if loop is None:
        return None
    mode = loop.spec.mode
    if loop.cursor is not None:
        return f"cursor loop ({loop.cursor.kind}, {loop.width} slots)"
    source = loop.in_ if isinstance(loop.in_, str) else json.dumps(loop.in_, default=str)
    return f"loop {loop.iterator} in {_bare(source)} ({mode})"


def _calls_playbook(step: Step) -> bool:
    tools = step.tool if isinstance(step.tool, list) else [step.tool]
    return any(t.kind == "playbook" for t in tools)


def _bare(text: str) -> str:
    """A template as its expression: `{{ a > 1 }}` -> `a > 1`."""
    return text.replace("{{", "").replace("}}", "").strip()


def _when(when: str | bool | None) -> str | None:
    if when is None or when is True:
        return None
    return _short(_bare(str(when)))


def _lines(step: Step, entry: str) -> list[str]:
    lines = [step.step, _short(_tool_line(step))]
    looped = _loop_line(step)
    if looped:
        lines.append(_short(looped))
    if step.step == entry:
        lines.insert(0, "▶ entry")
    return lines


def _arcs(loaded: LoadedPlaybook) -> list[tuple[str, str, str | None]]:
    out = []
    for step in loaded.playbook.workflow:
        for arc in step.arcs:
            out.append((step.step, arc.step, _when(arc.when)))
    return out


def mermaid(loaded: LoadedPlaybook) -> str:
    playbook = loaded.playbook
    g = G.build(playbook)
    ids = {s.step: f"s{i}" for i, s in enumerate(playbook.workflow)}
    ids.setdefault("end", "end_")

    def text(value: str) -> str:
        return value.replace('"', "#quot;")

    out = ["flowchart TD", f"  %% {text(loaded.path)} ({text(loaded.file)})"]
    for step in playbook.workflow:
        label = "<br/>".join(text(line) for line in _lines(step, g.entry))
        node = ids[step.step]
        if _calls_playbook(step):
            out.append(f'  {node}[["{label}"]]')
        elif step.step in g.joins:
            out.append(f'  {node}{{{{"{label}"}}}}')
        elif step.loop is not None:
            out.append(f'  {node}[/"{label}"/]')
        else:
            out.append(f'  {node}["{label}"]')
    if ids["end"] == "end_" and any(dst == "end" for _, dst, _ in _arcs(loaded)):
        out.append('  end_(("end"))')
    for src, dst, when in _arcs(loaded):
        arrow = "-.->" if not g.is_forward(src, dst) else "-->"
        said = f'|"{text(when)}"|' if when else ""
        out.append(f"  {ids[src]} {arrow}{said} {ids[dst]}")
    return "\n".join(out)


def dot(loaded: LoadedPlaybook) -> str:
    playbook = loaded.playbook
    g = G.build(playbook)

    def quoted(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)

    out = [
        f"digraph {quoted(loaded.path)} {{",
        "  rankdir=TB;",
        '  node [shape=box, fontname="Helvetica"];',
    ]
    for step in playbook.workflow:
        attrs: dict[str, Any] = {"label": "\n".join(_lines(step, g.entry))}
        if _calls_playbook(step):
            attrs.update(shape="box3d")
        elif step.step in g.joins:
            attrs.update(shape="doubleoctagon")
        elif step.loop is not None:
            attrs.update(shape="box", peripheries=2)
        if step.step == g.entry:
            attrs.update(style="bold")
        rendered = ", ".join(f"{k}={quoted(str(v))}" for k, v in attrs.items())
        out.append(f"  {quoted(step.step)} [{rendered}];")
    named_end = any(s.step == "end" for s in playbook.workflow)
    if not named_end and any(dst == "end" for _, dst, _ in _arcs(loaded)):
        out.append('  "end" [shape=doublecircle, label="end"];')
    for src, dst, when in _arcs(loaded):
        attrs = {}
        if when:
            attrs["label"] = when
        if not g.is_forward(src, dst):
            attrs["style"] = "dashed"
        rendered = ", ".join(f"{k}={quoted(str(v))}" for k, v in attrs.items())
        tail = f" [{rendered}]" if rendered else ""
        out.append(f"  {quoted(src)} -> {quoted(dst)}{tail};")
    out.append("}")
    return "\n".join(out)


def render(loaded: LoadedPlaybook, form: str = "mermaid") -> str:
    return dot(loaded) if form == "dot" else mermaid(loaded)
