import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stigmer_nb.errors import HistoryLockedError, ReadOnlySQLError, SchemaVersionError
from stigmer_nb.store import SCHEMA_VERSION, HistoryStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def task_row(execution_id: str, seq: int) -> dict:
    return {
        "execution_id": execution_id,
        "seq": seq,
        "task_id": f"t{seq}",
        "parent_id": None,
        "reference": "/do/0/a",
        "name": "a",
        "kind": "set",
        "status": "WORKFLOW_TASK_COMPLETED",
        "attempt": 1,
        "input": {"i": seq},
        "output": [1, "two"],
        "error": None,
        "occurred_at": NOW,
    }


def execution_row(execution_id: str, phase: str = "EXECUTION_PENDING") -> dict:
    return {
        "id": execution_id,
        "name": execution_id,
        "slug": execution_id,
        "workflow_id": "wfl-1",
        "workflow_instance_id": "win-1",
        "workflow_name": "w",
        "phase": phase,
        "input": {"a": 1},
        "output": None,
        "error": None,
        "runtime_env": {},
        "trigger_message": "",
        "created_at": NOW,
        "started_at": None,
        "completed_at": None,
        "updated_at": NOW,
        "temporal_workflow_id": None,
        "runner_workflow_id": None,
    }


@pytest.fixture
def store(tmp_path: Path):
    s = HistoryStore(tmp_path / "h.duckdb")
    yield s
    s.close()


def test_schema_has_public_tables_views_and_version(store: HistoryStore) -> None:
    names = set(store.query("SELECT table_name FROM information_schema.tables")["table_name"])
    assert {"workflows", "workflow_instances", "workflow_executions", "task_updates", "schema_info"} <= names
    assert {"task_states", "execution_durations", "phase_counts"} <= names
    assert store.rows("SELECT max(version) FROM schema_info")[0][0] == SCHEMA_VERSION


def test_writes_are_batched(store: HistoryStore) -> None:
    writer = store.writer
    assert writer is not None
    futures = [writer.insert_execution(execution_row(f"wex-{i}")) for i in range(50)]
    futures += [writer.insert_task_updates([task_row(f"wex-{i}", s) for s in range(1, 5)]) for i in range(50)]
    for f in futures:
        f.result(10)
    assert writer.stats.batches < 20  # 100 submissions, far fewer commits
    assert store.rows("SELECT count(*) FROM task_updates")[0][0] == 200
    row = store.rows("SELECT input, output FROM task_updates WHERE execution_id='wex-3' AND seq=2")[0]
    assert row == ('{"i":2}', '[1,"two"]')


def test_execution_upsert_keeps_latest_state(store: HistoryStore) -> None:
    writer = store.writer
    assert writer is not None
    writer.insert_execution(execution_row("wex-a"))
    writer.update_execution(execution_row("wex-a", "EXECUTION_IN_PROGRESS"))  # same batch: one insert
    writer.flush()
    writer.update_execution(execution_row("wex-a", "EXECUTION_FAILED"))
    writer.update_execution(execution_row("wex-a", "EXECUTION_COMPLETED")).result(10)
    assert store.rows("SELECT phase FROM workflow_executions") == [("EXECUTION_COMPLETED",)]


def test_a_bad_write_does_not_sink_its_batch(store: HistoryStore) -> None:
    writer = store.writer
    assert writer is not None
    good = writer.insert_execution(execution_row("wex-ok"))
    bad = writer.execute("INSERT INTO no_such_table VALUES (1)")
    good.result(10)
    with pytest.raises(Exception, match="no_such_table"):
        bad.result(10)
    assert store.rows("SELECT count(*) FROM workflow_executions")[0][0] == 1


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO workflows VALUES (1)",
        "DELETE FROM task_updates",
        "DROP TABLE workflows",
        "UPDATE workflow_executions SET phase = 'x'",
        "EXPLAIN ANALYZE DELETE FROM task_updates",
        "SELECT 1; DELETE FROM task_updates",
        "COPY task_updates TO '/tmp/x.csv'",
        "ATTACH '/tmp/other.duckdb'",
        "CHECKPOINT",
    ],
)
def test_user_sql_is_read_only_by_default(store: HistoryStore, sql: str) -> None:
    with pytest.raises(ReadOnlySQLError):
        store.sql(sql)


def test_user_sql_reads_and_writes_with_opt_in(store: HistoryStore) -> None:
    assert store.sql("SELECT 41 + ? AS x", [1])["x"][0] == 42
    assert store.sql("EXPLAIN SELECT * FROM task_updates") is not None
    store.sql("CREATE TABLE notes (t VARCHAR)", write=True)
    store.sql("INSERT INTO notes VALUES ('hi')", write=True)
    assert list(store.sql("SELECT t FROM notes")["t"]) == ["hi"]


def test_a_second_process_gets_a_clear_error(tmp_path: Path, store: HistoryStore) -> None:
    code = (
        "import sys\nfrom pathlib import Path\nfrom stigmer_nb.store import HistoryStore\n"
        "from stigmer_nb.errors import HistoryLockedError\n"
        f"try:\n    HistoryStore(Path({str(tmp_path / 'h.duckdb')!r}))\n"
        "except HistoryLockedError as e:\n    print(e); sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert str(tmp_path / "h.duckdb") in proc.stdout and "held by another process" in proc.stdout


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    s = HistoryStore(path)
    s.sql(f"INSERT INTO schema_info VALUES ({SCHEMA_VERSION + 1}, now())", write=True)
    s.close()
    with pytest.raises(SchemaVersionError, match="newer"):
        HistoryStore(path)


def test_lock_error_type_is_a_stigmer_error() -> None:
    assert issubclass(HistoryLockedError, Exception)


def test_a_history_under_a_file_is_a_history_error(tmp_path: Path) -> None:
    from stigmer_nb.errors import HistoryError

    (tmp_path / "a-file").write_text("")
    with pytest.raises(HistoryError, match="cannot create the folder of history file"):
        HistoryStore(tmp_path / "a-file" / "h.duckdb")


def test_a_version_3_file_migrates_to_versions_tags_and_the_lifecycle_log(tmp_path: Path) -> None:
    import json

    import duckdb

    from stigmer_nb.store import schema
    from stigmer_nb.store.values import document_hash

    path = tmp_path / "v3.duckdb"
    con = duckdb.connect(str(path))
    for version in (1, 2, 3):
        for statement in schema._MIGRATIONS[version]:  # type: ignore[union-attr]
            con.execute(statement)
        con.execute("INSERT INTO schema_info VALUES (?, now())", [version])
    doc = {"document": {"name": "old", "version": "1.0.0"}, "do": [{"a": {"set": {}}}]}
    con.execute(
        "INSERT INTO workflows VALUES ('wfl-1', 'old', 'old', 'ns', '1.0.0', '', ?, NULL, NULL, now(), now())",
        [json.dumps(doc)],
    )
    con.execute(
        "INSERT INTO workflow_executions (id, name, slug, workflow_id, workflow_instance_id, workflow_name, "
        "phase, created_at, updated_at) VALUES ('wex-1', 'e', 'e', 'wfl-1', 'win-1', 'old', "
        "'EXECUTION_COMPLETED', now(), now())"
    )
    con.close()
    store = HistoryStore(path)
    try:
        assert store.rows("SELECT max(version) FROM schema_info")[0][0] == SCHEMA_VERSION == 4
        assert store.rows("SELECT document_hash, workflow_name FROM workflow_versions") == [
            (document_hash(doc), "old")
        ]
        assert store.rows("SELECT document_hash, tags, batch_id FROM workflow_executions") == [
            (None, None, None)
        ]
        assert store.rows("SELECT executions, failure_rate FROM version_failure_rates") == [(0, None)]
        assert store.rows("SELECT count(*) FROM pending_approvals") == [(0,)]
        assert store.writer is not None
        store.writer.insert_events(
            [{"execution_id": "wex-1", "seq": None, "kind": "rerun", "detail": {"x": 1}, "occurred_at": NOW}]
        ).result(10)
        assert store.rows("SELECT kind, detail FROM execution_events") == [("rerun", '{"x":1}')]
    finally:
        store.close()


def test_document_hash_ignores_key_order() -> None:
    from stigmer_nb.store.values import document_hash

    assert document_hash({"a": 1, "b": [1, {"c": 2, "d": 3}]}) == document_hash(
        {"b": [1, {"d": 3, "c": 2}], "a": 1}
    )
    assert document_hash({"a": 1}) != document_hash({"a": 2})
