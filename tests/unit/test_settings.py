from pathlib import Path

import pytest

from stigmer_nb.errors import ConfigurationError
from stigmer_nb.settings import Settings


def test_defaults_match_stigmer() -> None:
    s = Settings.from_env({})
    assert s.stigmer_queue == "workflow_execution_stigmer"
    assert s.runner_queue == "workflow_execution_runner"
    assert s.zigflow_queue == "zigflow_execution"
    assert s.namespace == "default"
    assert s.temporal_host_port is None and s.embedded
    assert s.home == Path(".stigmer_nb")
    assert s.history_path == Path(".stigmer_nb/history.duckdb")


def test_exact_environment_names() -> None:
    env = {
        "TEMPORAL_WORKFLOW_EXECUTION_STIGMER_TASK_QUEUE": "a",
        "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE": "b",
        "TEMPORAL_ZIGFLOW_EXECUTION_TASK_QUEUE": "c",
        "TEMPORAL_HOST_PORT": "example:7233",
        "TEMPORAL_NAMESPACE": "ns",
        "STIGMER_NB_HOME": "/tmp/x",
        "STIGMER_NB_ALLOW_SHELL": "true",
        "STIGMER_NB_PORT": "7999",
    }
    s = Settings.from_env(env)
    assert (s.stigmer_queue, s.runner_queue, s.zigflow_queue) == ("a", "b", "c")
    assert s.temporal_host_port == "example:7233" and not s.embedded
    assert s.namespace == "ns"
    assert s.home == Path("/tmp/x") and s.history_path == Path("/tmp/x/history.duckdb")
    assert s.allow_shell is True and s.port == 7999


def test_overrides_win_and_none_is_ignored() -> None:
    s = Settings.from_env({"STIGMER_NB_HOME": "/a"}, home="/b", namespace=None)
    assert s.home == Path("/b") and s.namespace == "default"


def test_unknown_option_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown option"):
        Settings.from_env({}, hme="/x")


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="STIGMER_NB_PORT"):
        Settings.from_env({"STIGMER_NB_PORT": "seven"})


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.namespace = "x"  # type: ignore[misc]
    assert s.replace(namespace="y").namespace == "y"
