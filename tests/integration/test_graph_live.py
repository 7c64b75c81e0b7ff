"""lab.graph and execution.graph() on a real run: the diagram follows the run's task states."""

from __future__ import annotations

import pytest

from stigmer_nb.errors import InvalidInputError
from stigmer_nb.lab import Lab

from ..conftest import assert_eventually

pytestmark = pytest.mark.integration

DOC = """
document: {dsl: '1.0.0', namespace: tests, name: drawn, version: '1.0.0'}
do:
  - first: {set: {n: 0}}
  - loop:
      for: {each: x, in: '${ [1, 2, 3] }'}
      do:
        - add: {set: {n: '${ .n + $x }'}}
  - nap: {wait: {milliseconds: 800}}
  - last: {set: {n: '${ .n }'}}
"""


def node_class(svg: str, node_id: str) -> str:
    start = svg.index(f'id="{node_id}"')
    return svg[start : svg.index(">", start)]


def test_the_graph_of_a_run_is_coloured_by_its_task_states(lab: Lab) -> None:
    plain = lab.graph(DOC)
    assert plain.svg.count("stigmer-node") >= 5 and "stigmer-completed" not in plain.svg
    assert "subgraph" in plain.mermaid
    execution = lab.run(DOC)
    assert_eventually(lambda: "nap" in set(execution.tasks["name"]))
    running = execution.graph().svg
    assert "stigmer-in-progress" in node_class(running, "node-do-2-nap")
    assert "stigmer-completed" in node_class(running, "node-do-0-first")
    assert "\u00d73" in running  # the loop body ran three times
    execution.wait(30)
    done = lab.graph(execution=execution.id).svg
    assert "stigmer-completed" in node_class(done, "node-do-2-nap")
    assert "stigmer-completed" in node_class(done, "node-do-3-last")
    with pytest.raises(InvalidInputError, match="needs a document"):
        lab.graph()
