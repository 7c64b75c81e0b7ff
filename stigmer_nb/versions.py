"""Workflow versions: every distinct document by content hash, its executions, and diffs."""

from __future__ import annotations

import difflib
import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .lab import Lab

__all__ = ["VersionDiff", "diff", "versions"]


def versions(lab: Lab, workflow: str) -> pd.DataFrame:
    """``workflow``'s versions, oldest first: their number (1, 2, …), short and full hash, the
    document's own ``version`` field, first seen, executions and outcomes, failure rate, and which
    one is current."""
    wf = lab.service.get_workflow(workflow)
    df = lab.store.query(
        "SELECT row_number() OVER (ORDER BY first_seen_at, document_hash) AS number, "
        "left(document_hash, 12) AS short_hash, document_hash, version, first_seen_at, "
        "executions, finished, completed, failed, "
        "failure_rate, document_hash = ? AS current FROM version_failure_rates "
        "WHERE document_hash IN (SELECT document_hash FROM workflow_versions WHERE workflow_id = ?) "
        "ORDER BY first_seen_at, document_hash",
        [wf.document_hash, wf.id],
    )
    return df


class VersionDiff(str):
    """A unified diff of two versions' documents (as YAML); renders coloured in a notebook."""

    def _repr_html_(self) -> str:
        colours = {"+": "#16a34a", "-": "#dc2626", "@": "#6b7280"}
        lines = []
        for line in self.splitlines():
            colour = colours.get(line[:1]) if not line.startswith(("+++", "---")) else "#6b7280"
            style = f" style='color:{colour}'" if colour else ""
            lines.append(f"<span{style}>{html.escape(line)}</span>")
        body = "\n".join(lines) or "(the two versions are the same)"
        return f"<pre style='font-size:12px;line-height:1.35'>{body}</pre>"


def _yaml(document: Any) -> list[str]:
    import yaml

    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100).splitlines()


def diff(lab: Lab, workflow: str, a: str | None = None, b: str | None = None) -> VersionDiff:
    """What changed from version ``a`` to ``b`` (hashes or unique prefixes); by default the
    previous version against the current one."""
    from .errors import InvalidInputError

    service = lab.service
    wf = service.get_workflow(workflow)
    if a is None or b is None:
        known = [
            r[0]
            for r in lab.store.rows(
                "SELECT document_hash FROM workflow_versions WHERE workflow_id = ? ORDER BY first_seen_at",
                [wf.id],
            )
        ]
        if b is None:
            b = wf.document_hash
        if a is None:
            earlier = [h for h in known if h != b]
            if not earlier:
                raise InvalidInputError(f"{wf.name!r} has one version only: nothing to compare it with")
            a = earlier[-1]
    old, new = service.find_version(wf.id, a), service.find_version(wf.id, b)
    lines = difflib.unified_diff(
        _yaml(service.version_document(old)),
        _yaml(service.version_document(new)),
        fromfile=f"{wf.name}@{old[:12]}",
        tofile=f"{wf.name}@{new[:12]}",
        lineterm="",
    )
    return VersionDiff("\n".join(lines))
