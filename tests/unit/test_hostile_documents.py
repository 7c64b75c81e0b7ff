"""Documents are read with YAML 1.2 rules, and deep, huge or odd input gets one clear error, fast."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from stigmer_nb.dsl import openapi
from stigmer_nb.dsl.document import MAX_DEPTH, load_source, load_yaml
from stigmer_nb.dsl.openapi import _parse_document
from stigmer_nb.dsl.parse import parse_workflow
from stigmer_nb.errors import DSLValidationError, InvalidInputError
from stigmer_nb.model import ExecutionRecord
from stigmer_nb.service import Service
from stigmer_nb.store import HistoryStore
from tests.failures import problem_of

HEAD = "document: {dsl: '1.0.0', namespace: tests, name: hostile, version: '1.0.0'}\n"
SET = "do: [{a: {set: {x: 1}}}]\n"
META = {"dsl": "1.0.0", "namespace": "tests", "name": "hostile", "version": "1.0.0"}


def deep_text(levels: int) -> str:
    """``do: [{a: {do: [{a: {do: [...]}}]}}]``, ``levels`` task lists deep."""
    return HEAD + "do: " + "[{a: {do: " * levels + "[{b: {set: {x: 1}}}]" + "}}]" * levels + "\n"


def deep_dict(levels: int) -> dict[str, Any]:
    body: dict[str, Any] = {"set": {"x": 1}}
    for _ in range(levels):
        body = {"do": [{"a": body}]}
    return {"document": META, "do": [{"a": body}]}


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": nine aliases of nine aliases of ..., 9**9 values once expanded."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return HEAD + "\n".join(lines) + "\n" + SET


def refused(fn: Any, *args: Any, match: str, error: type[Exception] = InvalidInputError) -> str:
    """Calls ``fn``, which must raise ``error`` matching ``match`` within a second; its message."""
    started = time.perf_counter()
    with pytest.raises(error, match=match) as info:
        fn(*args)
    assert time.perf_counter() - started < 1.0
    message = str(info.value)
    assert "\n" not in message
    return message


# --- YAML 1.2 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["on", "off", "yes", "no", "y", "n", "Yes", "NO", "On", "OFF", "Y", "N"])
def test_yaml_11_booleans_stay_strings(word: str) -> None:
    assert load_yaml(f"{word}: {word}") == {word: word}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("~", None),
        ("null", None),
        ("NULL", None),
        ("", None),
        ("010", 10),  # decimal in YAML 1.2 (octal in 1.1)
        ("-010", -10),
        ("+7", 7),
        ("0o10", 8),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("1e3", 1000.0),  # a float in 1.2 (a string in 1.1, which wants a dot)
        (".5", 0.5),
        ("-.inf", float("-inf")),
        (".nan", None),  # NaN is not JSON
        ("1:20", "1:20"),  # sexagesimal in 1.1
        ("2024-01-01", "2024-01-01"),  # a timestamp in 1.1
        ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("0o9", "0o9"),
        ("tRUE", "tRUE"),
        ("Null", None),
        ("nULL", "nULL"),
        (".Inf", float("inf")),
        ("+.nan", "+.nan"),
    ],
)
def test_core_schema_scalars(text: str, value: Any) -> None:
    loaded = load_yaml(f"v: {text}")["v"]
    assert loaded == value and type(loaded) is type(value)


def test_keys_are_their_own_text() -> None:
    assert list(load_yaml("{on: 1, true: 2, 1: 3, null: 4, 010: 5}")) == ["on", "true", "1", "null", "010"]


def test_merge_keys_are_plain_keys() -> None:
    # `<<` merges are YAML 1.1 only; in 1.2 `<<` is a key like any other.
    assert load_yaml("a: &a {x: 1}\nb: {<<: *a}") == {"a": {"x": 1}, "b": {"<<": {"x": 1}}}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("v: !!timestamp 2024-01-01", "/v is a date .* JSON cannot hold"),
        ("v: !!binary aGVsbG8=", "/v is a bytes .* JSON cannot hold"),
        ("? [a, b]\n: 1", "has a sequence as a key; keys must be strings"),
    ],
)
def test_values_json_cannot_hold_are_refused(text: str, match: str) -> None:
    refused(load_yaml, text, match=match)


def test_explicit_int_tags_are_checked() -> None:
    refused(load_yaml, "v: !!int 0b101", match="'0b101' is not a YAML 1.2 integer", error=DSLValidationError)
    refused(
        load_yaml,
        "v: " + "9" * 5000,
        match="is not an integer of a readable length",
        error=DSLValidationError,
    )


def test_schedule_on_validates() -> None:
    text = HEAD + "schedule:\n  on:\n    one:\n      with: {type: com.example.tick}\n" + SET
    data, _ = parse_workflow(text)
    assert data["schedule"] == {"on": {"one": {"with": {"type": "com.example.tick"}}}}


def test_openapi_documents_are_read_with_the_same_rules() -> None:
    body = b"openapi: 3.0.0\npaths:\n  /x:\n    get: {operationId: on, x-flag: yes, x-n: 010}\n"
    operation = _parse_document(body, "https://example.test/api.yaml")["paths"]["/x"]["get"]
    assert operation == {"operationId": "on", "x-flag": "yes", "x-n": 10}


def test_openapi_alias_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openapi, "_MAX_DOCUMENT_NODES", 10_000)  # the real one takes seconds to reach
    body = alias_bomb().replace(HEAD, "paths: {}\n").encode()
    with pytest.raises(ApplicationError, match="expands to more than 10,000 values") as info:
        _parse_document(body, "https://example.test/api.yaml")
    assert problem_of(info.value)["title"] == "Bad OpenAPI document"


# --- deep -----------------------------------------------------------------------------------------


def test_deep_yaml_text_is_refused() -> None:
    message = refused(parse_workflow, deep_text(2000), match=f"nests more than {MAX_DEPTH} levels deep")
    assert message.startswith("the document nests") and "at most 128 are allowed" in message


def test_deep_dict_is_refused_with_its_depth() -> None:
    message = refused(parse_workflow, deep_dict(2000), match="nests 6,005 levels deep")
    assert "at most 128 are allowed; flatten it" in message


def test_a_dict_that_contains_itself_is_refused() -> None:
    doc: dict[str, Any] = {"document": META}
    doc["do"] = [{"a": doc}]
    refused(parse_workflow, doc, match="nests more than 128 levels deep")


def test_a_chain_of_aliases_deeper_than_the_limit_is_refused() -> None:
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, MAX_DEPTH + 10)]
    refused(parse_workflow, HEAD + "\n".join(lines) + "\n" + SET, match="nests more than 128 levels deep")


def test_documents_as_deep_as_real_ones_pass() -> None:
    # 40 nested task lists: three containers each, plus the top; deeper than any real document.
    assert parse_workflow(deep_text(40))[0]["do"]
    assert parse_workflow(deep_dict(40))[0]["do"]


def test_alias_bomb_is_refused_fast() -> None:
    refused(parse_workflow, alias_bomb(), match="expands to more than 100,000 values")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    store = HistoryStore(tmp_path / "h.duckdb")

    async def starter(record: ExecutionRecord) -> None:
        pass

    svc = Service(store, max_input_bytes=2 * 1024 * 1024)
    svc.starter = starter
    yield svc
    store.close()


def test_deep_input_is_refused_before_anything_is_written(service: Service) -> None:
    asyncio.run(service.apply_workflow(deep_dict(1)))
    value: Any = "leaf"
    for _ in range(100_000):
        value = [value]
    create = service.create_execution(workflow="hostile", input=value)
    message = refused(asyncio.run, create, match="the input nests 100,000 levels deep")
    assert "at most 128 are allowed" in message
    medium: Any = 1
    for _ in range(MAX_DEPTH + 1):
        medium = {"x": medium}
    refused(asyncio.run, service.create_execution(workflow="hostile", input=medium), match="nests 129 levels")
    assert service.store.rows("SELECT count(*) FROM workflow_executions")[0][0] == 0
    ok = asyncio.run(service.create_execution(workflow="hostile", input={"rows": [[1, 2]] * 500}))
    assert ok.id


# --- odd sources ----------------------------------------------------------------------------------


def test_bytes_are_utf8_yaml() -> None:
    assert parse_workflow((HEAD + SET).encode())[0]["do"] == [{"a": {"set": {"x": 1}}}]


def test_non_utf8_bytes_are_refused() -> None:
    message = refused(parse_workflow, b"\xff\xfed\x00o\x00", match="is not UTF-8")
    assert "byte 0xff at offset 0" in message and "UTF-16" in message and "save it as UTF-8" in message


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_bytes((HEAD + SET).encode() + b"# caf\xe9\n")
    message = refused(parse_workflow, path, match="flow.yaml is not UTF-8")
    assert f"at offset {len(HEAD + SET) + 5}" in message and "save it as UTF-8" in message
    refused(parse_workflow, str(path), match="flow.yaml is not UTF-8")


@pytest.mark.parametrize("source", [None, 42, ["do"], 1.5, object()])
def test_other_types_are_refused(source: Any) -> None:
    refused(parse_workflow, source, match="must be YAML/JSON text, a path, a dict or bytes")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "flows.yaml"
    folder.mkdir()
    refused(parse_workflow, folder, match="is a directory; pass the workflow file")


def test_an_unreadable_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(HEAD + SET)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make the open fail as it would for anyone else

        def denied(self: Path, *args: Any, **kwargs: Any) -> Any:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "open", denied)
        monkeypatch.setattr(Path, "read_text", denied)
    try:
        refused(parse_workflow, path, match="cannot read .*secret.yaml: Permission denied")
    finally:
        path.chmod(0o600)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:  # sparse: 11 MiB on paper, nothing on disk
        handle.truncate(11 * 1024 * 1024)
    refused(parse_workflow, path, match="huge.yaml is over 10 MiB, the limit for a workflow document")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_file_is_refused(tmp_path: Path) -> None:
    # Reading it whole would never end; stat says 0 bytes.
    endless = tmp_path / "endless.yaml"
    endless.symlink_to("/dev/zero")
    refused(parse_workflow, endless, match="endless.yaml is over 10 MiB")


def test_huge_text_is_refused() -> None:
    refused(
        load_source, HEAD + SET + "#" * (11 * 1024 * 1024), match="is 11.0 MiB; documents are limited to 10"
    )


# --- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        (
            "latin1.yaml",
            (HEAD + SET).encode() + b"# caf\xe9\n",
            "latin1.yaml is not UTF-8: byte 0xe9 at offset",
        ),
        ("deep.yaml", deep_text(2000).encode(), "deep.yaml nests more than 128 levels deep"),
    ],
)
def test_cli_validate_refuses_in_one_line(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "stigmer_nb", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.perf_counter() - started < 10
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and match in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (None, "cannot read it"),  # a directory
    ],
    ids=["not UTF-8", "deep", "a directory"],
)
def test_cli_run_refuses_bad_input_files_in_one_line(
    tmp_path: Path, content: bytes | None, match: str
) -> None:
    # Refused before a lab starts: no server, nothing written.
    source = tmp_path / "input.json"
    if content is None:
        source.mkdir()
    else:
        source.write_bytes(content)
    doc = tmp_path / "flow.yaml"
    doc.write_text(HEAD + SET)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stigmer_nb",
            "run",
            str(doc),
            "--input",
            f"@{source}",
            "--home",
            str(tmp_path / "h"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and match in proc.stderr, proc.stderr
    assert not (tmp_path / "h").exists()
