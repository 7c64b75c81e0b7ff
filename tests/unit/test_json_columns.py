"""Decoding the JSON columns of history DataFrames (``lab.history()``, ``lab.tasks()``)."""

from __future__ import annotations

import duckdb
import pandas as pd

from stigmer_nb.lab import _json_columns


def _frame(values: list[str | None]) -> pd.DataFrame:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, output JSON)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    return con.execute("SELECT * FROM t ORDER BY i").df()


def test_json_text_becomes_python_values_and_sql_null_becomes_none() -> None:
    df = _json_columns(_frame(['{"a": [1, 2.5, "x"]}', None, '"text"', "true"]), ("output", "missing"))
    values = list(df["output"])
    assert values[0] == {"a": [1, 2.5, "x"]} and values[2:] == ["text", True]
    assert values[1] is None  # not NaN, which is truthy
    assert pd.isna(values[1])  # and still missing to pandas


def test_an_all_null_column_is_none_too() -> None:
    assert list(_json_columns(_frame([None, None]), ("output",))["output"]) == [None, None]


def test_values_orjson_refuses_still_decode() -> None:
    big = 2**70
    df = _json_columns(_frame([f'{{"n": {big}}}', '{"m": 1}']), ("output",))
    assert list(df["output"]) == [{"n": big}, {"m": 1}]
