"""Secrets never appear in clear: not in DuckDB, not in Temporal history, not in the server log."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from stigmer_nb.lab import Lab

pytestmark = pytest.mark.integration

SECRET = "tok-9f8e7d6c5b4a"

DOC = """
document: {dsl: '1.0.0', namespace: sec, name: uses-secret, version: '1.0.0'}
do:
  - build:
      set:
        header: '${ "Bearer " + $secrets.API_TOKEN }'
        mode: '${ $secrets.MODE_NOT_SECRET // "none" }'
  - echo:
      call: echoBack
      with:
        auth: '${ .header }'
  - fail:
      if: '${ .auth | contains("Bearer") }'
      raise:
        error:
          type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
          status: 500
          title: Leaky
          detail: '${ "token was " + $secrets.API_TOKEN }'
"""


def _strings(node: object) -> Iterator[bytes]:
    """Every string in a JSON history, plus its base64 decoding (payload bytes are base64 there)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node.encode()
        try:
            yield base64.b64decode(node, validate=True)
        except (binascii.Error, ValueError):
            pass


def echo_back(auth: str) -> dict[str, str]:
    return {"auth": auth}


def test_secret_values_never_stored_in_clear(lab: Lab, tmp_path: Path) -> None:
    lab.register_function("echoBack", echo_back)
    execution = lab.run(
        DOC,
        input={"note": "plain"},
        runtime_env={"API_TOKEN": {"value": SECRET, "is_secret": True}, "REGION": "eu"},
    ).wait(60)
    assert execution.phase == "EXECUTION_FAILED"
    assert execution.error["detail"] == "token was ***"

    # 1. DuckDB: every table, every column, and the file bytes themselves.
    lab.store.writer.flush()
    for table in ("workflows", "workflow_instances", "workflow_executions", "task_updates"):
        dump = lab.sql(f"SELECT * FROM {table}").to_json(date_format="iso")
        assert SECRET not in dump, table
    env = execution.record.runtime_env
    assert env["API_TOKEN"] == {"value": "***", "is_secret": True} and env["REGION"]["value"] == "eu"

    # 2. Temporal: the raw history of both workflows, read with a client that cannot decrypt.
    async def raw_histories() -> list[list[bytes]]:
        plain = await Client.connect(lab.settings.temporal_host_port, namespace=lab.settings.namespace)
        out = []
        for wid in (execution.record.temporal_workflow_id, execution.record.runner_workflow_id):
            history = await plain.get_workflow_handle(wid).fetch_history()
            out.append(list(_strings(json.loads(history.to_json()))))
        return out

    histories = lab._check().call(raw_histories())
    for strings in histories:
        assert strings and not any(SECRET.encode() in s for s in strings)
    assert any(b"binary/stigmer-sealed" in s for strings in histories for s in strings)

    # 3. Logs in the data directory.
    for log in Path(lab.settings.home).glob("*.log"):
        assert SECRET not in log.read_text(errors="replace")

    # The run itself saw the real value: the callable received it.
    echo_task = execution.tasks.set_index("name").loc["echo"]
    assert echo_task["output"] == {"auth": "Bearer ***"}


def _listening_addresses(pid: int) -> list[str]:
    """Local addresses of the TCP sockets ``pid`` listens on (from /proc, no extra tools)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A = LISTEN
                continue
            address = fields[1].split(":")[0]
            if width == 8:
                found.append(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
            else:
                found.append("::1" if address == "00000000000000000000000001000000" else address)
    return found


def test_server_and_ui_listen_on_loopback_only(tmp_path: Path) -> None:
    import stigmer_nb

    lab = stigmer_nb.start(home=tmp_path, ui=True, durable=False)
    try:
        assert lab.server is not None and lab.server.ui_port is not None
        addresses = _listening_addresses(lab.server.pid)
        assert len(addresses) >= 2  # frontend gRPC, UI, HTTP API, metrics …
        assert set(addresses) <= {"127.0.0.1", "::1"}, addresses
    finally:
        lab.stop()


DERIVED_SECRET = "Tok-9f8e7d6c5b4a"

DERIVED_DOC = """
document: {dsl: '1.0.0', namespace: sec, name: derives-secret, version: '1.0.0'}
do:
  - derive:
      set:
        lower: '${ $secrets.TOK | ascii_downcase }'
        upper: '${ $secrets.TOK | ascii_upcase }'
        b64: '${ $secrets.TOK | @base64 }'
        reversed: '${ $secrets.TOK | explode | reverse | implode }'
        uri: '${ $secrets.TOK | @uri }'
        length: '${ $secrets.TOK | length }'
  - second:
      set:
        again: '${ .lower | ascii_upcase }'
        wrapped: '${ "x-" + .b64 }'
        length: '${ .length }'
  - call:
      call: echoBack
      with:
        auth: '${ "Basic " + .wrapped }'
  - fail:
      raise:
        error:
          type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
          status: 500
          title: Leaky
          detail: '${ "it was " + ($secrets.TOK | ascii_downcase) }'
"""


def _transforms(secret: str) -> dict[str, bytes]:
    return {
        "plain": secret.encode(),
        "lower": secret.lower().encode(),
        "upper": secret.upper().encode(),
        "base64": base64.b64encode(secret.encode()),
        "base64 of x-base64": base64.b64encode(b"x-" + base64.b64encode(secret.encode())),
        "reversed": secret[::-1].encode(),
    }


def test_values_derived_from_a_secret_never_stored_in_clear(tmp_path: Path) -> None:
    import stigmer_nb

    home = tmp_path / "home"
    lab = stigmer_nb.start(home=home, ui=False, durable=True)
    try:
        lab.register_function("echoBack", echo_back)
        run = lab.run(DERIVED_DOC, runtime_env={"TOK": {"value": DERIVED_SECRET, "is_secret": True}}).wait(60)
        assert run.phase == "EXECUTION_FAILED"
        assert run.error["detail"] == "it was ***"
        second = run.tasks.set_index("name").loc["second"]["output"]
        assert second == {"again": "***", "wrapped": "x-***", "length": 16}  # lengths are not secret
        assert run.tasks.set_index("name").loc["call"]["output"] == {"auth": "Basic x-***"}
    finally:
        lab.stop()
    # Every file the lab wrote: the DuckDB file and its WAL, the durable server's SQLite state and
    # its WAL, the server log, the workers' log.
    files = [p for p in home.rglob("*") if p.is_file() and p.name != "codec.key"]
    assert any(p.name == "temporal.db" for p in files) and any(p.suffix == ".duckdb" for p in files)
    for path in files:
        data = path.read_bytes()
        for name, form in _transforms(DERIVED_SECRET).items():
            assert form not in data, f"{name} of the secret is in {path.name}"


def test_a_document_holding_its_own_secret_is_refused_before_anything_is_saved(lab: Lab) -> None:
    from stigmer_nb.errors import InvalidInputError

    # What examples/dsl/44-secrets.yaml used to do: the value sat in document.metadata.
    doc = """
document:
  dsl: '1.0.0'
  namespace: sec
  name: keeps-its-secret
  version: '1.0.0'
  metadata: {example: {runtime_env: {API_TOKEN: {value: s3cr3t-value, is_secret: true}}}}
do:
  - useIt:
      set: {header: '${ "Bearer " + $secrets.API_TOKEN }'}
"""
    with pytest.raises(InvalidInputError, match="contains the value of secret 'API_TOKEN'"):
        lab.run(doc, runtime_env={"API_TOKEN": {"value": "s3cr3t-value", "is_secret": True}})
    lab.store.writer.flush()
    assert lab.sql("SELECT count(*) AS n FROM workflows")["n"][0] == 0
    # The same document with a secret it does not hold runs.
    ok = lab.run(doc, runtime_env={"API_TOKEN": {"value": "another-value", "is_secret": True}}).wait(30)
    assert ok.phase == "EXECUTION_COMPLETED" and ok.output == {"header": "Bearer ***"}
