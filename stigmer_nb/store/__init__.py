"""History store: the DuckDB file, its batched writer and its schema."""

from .history import HistoryStore, classify_sql
from .schema import SCHEMA_VERSION
from .values import dumps
from .writer import Writer, WriterStats

__all__ = ["SCHEMA_VERSION", "HistoryStore", "Writer", "WriterStats", "classify_sql", "dumps"]
