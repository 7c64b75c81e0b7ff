"""Names for node and group ids inside Mermaid and DOT text: ``node-do-1-check`` → ``node_do_1_check``."""

from __future__ import annotations

__all__ = ["Names"]


class Names:
    """Underscored, unique names (a dash is an operator in Mermaid, and Graphviz escapes it)."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._taken: set[str] = set()

    def __getitem__(self, node_id: str) -> str:
        name = self._names.get(node_id)
        if name is None:
            base = node_id.replace("-", "_")
            name, n = base, 1
            while name in self._taken:
                n += 1
                name = f"{base}_{n}"
            self._taken.add(name)
            self._names[node_id] = name
        return name
