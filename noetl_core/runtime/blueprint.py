"""A loaded playbook prepared for running: its graph and each step's template names."""

from __future__ import annotations

from ..engine.graph import Graph, build
from ..playbook.loader import LoadedPlaybook
from ..playbook.model import Playbook, Step
from .hydrate import step_names


class Blueprint:
    def __init__(self, loaded: LoadedPlaybook):
        self.loaded = loaded
        self.playbook: Playbook = loaded.playbook
        self.graph: Graph = build(loaded.playbook)
        self._steps = {s.step: s for s in loaded.playbook.workflow}
        self._names = {s.step: step_names(loaded.playbook, s) for s in loaded.playbook.workflow}

    def step(self, name: str) -> Step:
        return self._steps[name]

    def names(self, step: str) -> frozenset[str]:
        return self._names[step]
