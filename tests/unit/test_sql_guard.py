"""User SQL: writes hidden inside queries are refused, and the lab's own files cannot be read."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from stigmer_nb.errors import HistoryError, ProtectedPathError, ReadOnlySQLError
from stigmer_nb.store import HistoryStore, sqlguard

from .test_store import execution_row, task_row

KEY = "c2VjcmV0LWtleS1kby1ub3QtbGVhaw=="


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A store laid out like a lab's: ``<tmp>/lab`` holds the codec key and the history; cwd is ``<tmp>``."""
    home = tmp_path / "lab"
    home.mkdir()
    (home / "codec.key").write_text(KEY + "\n")
    monkeypatch.chdir(tmp_path)
    store = HistoryStore(home / "history.duckdb", protected=(home, home / "codec.key"))
    assert store.writer is not None
    store.writer.insert_execution(execution_row("wex-1", "EXECUTION_COMPLETED")).result(10)
    store.writer.insert_task_updates([task_row("wex-1", s) for s in range(1, 4)]).result(10)
    yield store
    store.close()


def count(store: HistoryStore) -> int:
    return store.rows("SELECT count(*) FROM task_updates")[0][0]


# --- writes hidden inside queries -------------------------------------------------------------

HIDDEN_WRITES = [
    "WITH d AS (DELETE FROM task_updates RETURNING *) SELECT * FROM d",
    "WITH d AS (UPDATE task_updates SET seq = seq + 100 RETURNING *) SELECT count(*) FROM d",
    "WITH d AS (INSERT INTO task_updates SELECT * FROM task_updates RETURNING *) SELECT count(*) FROM d",
    "SELECT * FROM (WITH d AS (DELETE FROM task_updates RETURNING *) SELECT * FROM d)",
    "SELECT (WITH d AS (DELETE FROM task_updates RETURNING seq) SELECT count(*) FROM d) AS n",
    "SELECT 1 AS n UNION ALL (WITH d AS (DELETE FROM task_updates RETURNING seq) SELECT count(*) FROM d)",
    "EXPLAIN ANALYZE WITH d AS (DELETE FROM task_updates RETURNING *) SELECT * FROM d",
    "EXPLAIN ANALYZE DELETE FROM task_updates",
]


@pytest.mark.parametrize("sql", HIDDEN_WRITES)
def test_writes_inside_queries_are_refused(lab: HistoryStore, sql: str) -> None:
    with pytest.raises(ReadOnlySQLError, match="write=True"):
        lab.sql(sql)
    assert count(lab) == 3
    assert lab.rows("SELECT max(seq) FROM task_updates")[0][0] == 3


def test_the_refusal_names_the_hidden_statement(lab: HistoryStore) -> None:
    with pytest.raises(ReadOnlySQLError, match="a DELETE inside a WITH clause"):
        lab.sql(HIDDEN_WRITES[0])


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH 'other.duckdb' AS other",
        "COPY task_updates TO 'out.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET file_search_path = 'lab'",
        "PRAGMA enable_profiling",
        "CALL checkpoint()",
        "SELECT * FROM checkpoint()",
    ],
)
def test_statements_that_write_or_load_are_refused(lab: HistoryStore, sql: str) -> None:
    with pytest.raises(ReadOnlySQLError):
        lab.sql(sql)
    assert not Path("out.csv").exists() and not Path("other.duckdb").exists()


def test_functions_that_change_state_are_refused_and_setseed_is_not(lab: HistoryStore) -> None:
    lab.sql("CREATE SEQUENCE s", write=True)
    with pytest.raises(ReadOnlySQLError, match=r"nextval\(\)"):
        lab.sql("SELECT nextval('s')")
    assert lab.sql("SELECT nextval('s') AS n", write=True)["n"][0] == 1
    assert lab.sql("SELECT setseed(0.5) AS x") is not None


def test_sql_run_from_a_string_is_refused(lab: HistoryStore) -> None:
    with pytest.raises(HistoryError, match="write that SQL directly"):
        lab.sql("SELECT * FROM query('WITH d AS (DELETE FROM task_updates RETURNING *) SELECT * FROM d')")
    assert count(lab) == 3


def test_what_cannot_be_serialized_is_refused(lab: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlguard, "_serialize", lambda con, text: None)
    with pytest.raises(ReadOnlySQLError, match="cannot be checked"):
        lab.sql("SELECT 1")


def test_a_write_the_check_misses_is_rolled_back(lab: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlguard.SQLGuard, "check", lambda self, con, sql, *, write, params=None: ["SELECT"])
    deleted = lab.sql(HIDDEN_WRITES[0])
    assert deleted is not None and len(deleted) == 3  # it ran...
    assert count(lab) == 3  # ...and was rolled back


def test_the_writer_commits_while_a_user_read_runs(lab: HistoryStore) -> None:
    assert lab.writer is not None
    done: dict[str, float] = {}

    def read() -> None:
        lab.sql("SELECT sum(i) FROM range(1500000000) t(i)")
        done["read"] = time.monotonic()

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)
    lab.writer.insert_task_updates([task_row("wex-1", 4)]).result(10)
    done["write"] = time.monotonic()
    reader.join(30)
    assert done["write"] < done["read"]  # the open read did not hold the writer back
    assert count(lab) == 4


# --- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT phase, executions FROM phase_counts",
        "SELECT t.name, t.status FROM task_states t JOIN workflow_executions e ON e.id = t.execution_id",
        "SELECT * FROM execution_durations",
        "SELECT seq FROM task_updates UNION SELECT 99 ORDER BY 1",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
        "WITH last AS (SELECT max(seq) AS m FROM task_updates) SELECT * FROM task_updates, last WHERE seq = m",
        "EXPLAIN SELECT * FROM task_states",
        "EXPLAIN ANALYZE SELECT * FROM task_states",
        "SELECT count(*) AS n FROM task_updates WHERE seq > ?",
    ],
)
def test_ordinary_queries_keep_working(lab: HistoryStore, sql: str) -> None:
    assert lab.sql(sql, [0] if "?" in sql else None) is not None


def test_results_and_parameters_come_back(lab: HistoryStore) -> None:
    assert lab.sql("SELECT count(*) AS n FROM task_updates WHERE seq > ?", [1])["n"][0] == 2
    assert list(lab.sql("SELECT 1 AS a; SELECT 2 AS a")["a"]) == [2]


# --- the lab's own files -------------------------------------------------------------------


@pytest.fixture
def links(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.csv").write_text("a\n1\n")
    os.symlink(tmp_path / "lab" / "codec.key", tmp_path / "key.csv")
    os.symlink(tmp_path / "lab", tmp_path / "door")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_blob('{home}/codec.key')",
        "SELECT * FROM read_text('lab/codec.key')",
        "SELECT * FROM read_text('./lab/../lab/codec.key')",
        "SELECT * FROM read_text('{home}/*.key')",
        "SELECT * FROM read_text('{tmp}/*/codec.key')",
        "SELECT * FROM read_text('{tmp}/**')",
        "SELECT * FROM read_text('file://{home}/codec.key')",
        "SELECT * FROM read_csv('lab/codec.key', header = false)",
        "SELECT * FROM read_csv(['elsewhere.csv', 'lab/codec.key'])",
        "SELECT * FROM read_csv_auto('key.csv')",  # a symlink outside the home pointing in
        "FROM 'key.csv'",
        "SELECT * FROM read_text('door/codec.key')",  # a symlinked folder
        "SELECT * FROM read_text('k*.csv')",
        "SELECT * FROM read_blob('{home}/history.duckdb')",
        "SELECT * FROM read_blob('lab/history.duckdb*')",
        "SELECT * FROM read_duckdb('lab/history.duckdb', table_name = 'task_updates')",
        "SELECT * FROM sniff_csv('lab/codec.key')",
        "SELECT * FROM parquet_metadata('lab/codec.key')",
        "SELECT * FROM glob('lab/*')",
        "SELECT (SELECT content FROM read_text('lab/codec.key')) AS k",
        "WITH k AS (SELECT * FROM read_text('lab/codec.key')) SELECT * FROM k",
    ],
)
@pytest.mark.usefixtures("links")
def test_the_lab_s_own_files_cannot_be_read(lab: HistoryStore, tmp_path: Path, sql: str) -> None:
    with pytest.raises(ProtectedPathError) as caught:
        lab.sql(sql.format(home=tmp_path / "lab", tmp=tmp_path))
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_blob('lab/' || 'codec.key')",
        "SELECT * FROM read_text(getvariable('p'))",
    ],
)
def test_a_path_that_is_not_a_literal_is_refused(lab: HistoryStore, sql: str) -> None:
    with pytest.raises(ProtectedPathError, match="literal"):
        lab.sql(sql)


@pytest.mark.parametrize("params", [["lab/codec.key"], {"p": "lab/codec.key"}], ids=["?", "$p"])
def test_a_path_bound_as_a_parameter_is_checked_like_a_literal(
    lab: HistoryStore, tmp_path: Path, params: object
) -> None:
    sql = "SELECT * FROM read_blob(?)" if isinstance(params, list) else "SELECT * FROM read_blob($p)"
    with pytest.raises(ProtectedPathError, match="home"):
        lab.sql(sql, params)
    (tmp_path / "data.csv").write_text("a\n1\n")
    allowed = ["data.csv"] if isinstance(params, list) else {"p": "data.csv"}
    assert lab.sql(sql.replace("read_blob", "read_csv"), allowed)["a"].tolist() == [1]
    with pytest.raises(ProtectedPathError, match="literal"):
        lab.sql("SELECT * FROM read_blob(?)", [5])


def test_data_files_outside_the_home_can_be_read(lab: HistoryStore, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "export.csv").write_text("seq,label\n1,one\n2,two\n")
    (tmp_path / "data" / "more.csv").write_text("seq,label\n3,three\n")
    assert len(lab.sql("SELECT * FROM read_csv('data/export.csv')")) == 2
    assert len(lab.sql(f"FROM '{tmp_path / 'data' / 'export.csv'}'")) == 2
    assert len(lab.sql("SELECT * FROM read_csv('data/*.csv', union_by_name = true)")) == 3
    assert len(lab.sql("SELECT * FROM read_csv(['data/export.csv', 'data/more.csv'])")) == 3
    assert len(lab.sql("SELECT * FROM glob('*')")) == 0  # the home folder is not listed into
    joined = lab.sql(
        "SELECT t.seq, d.label FROM task_updates t JOIN 'data/export.csv' d ON d.seq = t.seq ORDER BY 1"
    )
    assert list(joined["label"]) == ["one", "two"]


@pytest.mark.usefixtures("links")
def test_writes_work_with_opt_in_and_the_key_stays_unreadable(lab: HistoryStore) -> None:
    gone = lab.sql(
        "WITH d AS (DELETE FROM task_updates WHERE seq = 1 RETURNING *) SELECT * FROM d", write=True
    )
    assert gone is not None and len(gone) == 1
    assert count(lab) == 2
    lab.sql("CREATE TABLE notes (t VARCHAR)", write=True)
    lab.sql("INSERT INTO notes VALUES ('hi.there')", write=True)
    assert list(lab.sql("SELECT t FROM notes")["t"]) == ["hi.there"]
    for sql in [
        "SELECT * FROM read_blob('lab/codec.key')",
        "CREATE TABLE stolen AS SELECT * FROM read_blob('lab/codec.key')",
        "INSERT INTO notes SELECT content FROM read_text('key.csv')",
        "ATTACH 'lab/history.duckdb' AS again",
        "COPY notes TO 'lab/codec.key'",
    ]:
        with pytest.raises(ProtectedPathError):
            lab.sql(sql, write=True)
    assert list(lab.sql("SELECT t FROM notes")["t"]) == ["hi.there"]
    assert (lab.path.parent / "codec.key").read_text().strip() == KEY


def test_a_store_without_protected_paths_still_guards_its_own_file(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.duckdb")
    try:
        with pytest.raises(ProtectedPathError, match="history file"):
            store.sql(f"SELECT * FROM read_blob('{tmp_path / 'h.duckdb'}')")
        with pytest.raises(ReadOnlySQLError):
            store.sql("WITH d AS (DELETE FROM task_updates RETURNING *) SELECT * FROM d")
    finally:
        store.close()
