"""Reading the scenario's results."""

from __future__ import annotations

from typing import Any


def step(results: dict[str, Any], name: str) -> dict[str, Any]:
    """One step's facts; a step that raised fails the test with its traceback."""
    facts = results.get(name)
    assert facts is not None, f"the scenario did not run step {name}"
    assert "error" not in facts, f"{name}: {facts['error']}\n{facts.get('traceback', '')}"
    assert isinstance(facts, dict)
    return facts
