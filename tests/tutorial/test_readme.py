"""The README promises what the code does: every setting, every command, a quickstart that runs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from stigmer_nb.cli import _parser
from stigmer_nb.settings import Settings

from .conftest import REPO

README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_configuration_table_covers_every_setting_and_environment_variable() -> None:
    rows = [line for line in _section("Configuration").splitlines() if re.match(r"\| `\w+` \|", line)]
    options = {re.match(r"\| `(\w+)`", row).group(1) for row in rows}  # type: ignore[union-attr]
    variables = {v for row in rows for v in re.findall(r"`([A-Z][A-Z_]+)`", row)}
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert options == fields
    assert set(Settings.env_names().values()) <= variables
    for row in rows:  # each option sits beside its own variable
        option = re.match(r"\| `(\w+)`", row).group(1)  # type: ignore[union-attr]
        assert f"`{Settings.env_names()[option]}`" in row, row


def test_cli_reference_covers_every_command_and_exit_code() -> None:
    section = _section("Command line")
    subparsers = next(a for a in _parser()._actions if a.dest == "command")
    for command in subparsers.choices:  # type: ignore[union-attr]
        assert f"stigmer-nb {command}" in section, command
    for code in ("`0`", "`1`", "`2`", "`130`"):
        assert code in section


def test_architecture_names_the_queues_and_workflow_ids() -> None:
    section = _section("How it runs: the Stigmer flow")
    for name in (
        "stigmer/workflow-execution/invoke/<execution id>",
        "workflow-exec-<execution id>",
        "workflow_execution_stigmer",
        "workflow_execution_runner",
        "zigflow_execution",
        '{"activityTaskQueue": "<runner queue>"}',
        "ExecuteWorkflow",
        "ExecuteServerlessWorkflow",
        "UpdateWorkflowExecutionStatus",
    ):
        assert name in section, name


def test_links_images_and_binder_badge() -> None:
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)\)", README):
        assert (REPO / target).exists(), f"README links to {target}, which does not exist"
    badge = re.search(r"https://mybinder\.org/v2/gh/[^)\s]+", README)
    assert badge and badge.group(0).endswith("/HEAD?urlpath=lab/tree/notebooks/01-quickstart.ipynb")
    assert "make lab" in README and "make test" in README
    for title in ("Troubleshooting", "Scaling out: a Temporal cluster and remote runners"):
        _section(title)
    for topic in ("port", "held by another process", "temporal", "Binder", "Time skipping"):
        assert topic in _section("Troubleshooting"), topic


@pytest.mark.integration
def test_quickstart_code_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = re.search(r"```python\n(.*?)```", _section("Quickstart"), re.S)
    assert code is not None
    lines = code.group(1).strip().splitlines()
    assert len(lines) <= 14, "the quickstart should stay about ten lines"
    monkeypatch.setenv("STIGMER_NB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STIGMER_NB_UI", "false")
    assert lines[-1] == "lab.stop()"
    namespace: dict[str, Any] = {}
    try:
        exec(compile("\n".join(lines[:-1]), "README quickstart", "exec"), namespace)
        assert namespace["run"].output == {"greeting": "Hello, Ada"}
        assert namespace["run"].phase == "EXECUTION_COMPLETED"
    finally:
        if "lab" in namespace:
            exec(lines[-1], namespace)
    assert not namespace["lab"].running
