"""The engine benchmark's document, written by hand as one temporalio workflow (the baseline)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

__all__ = ["HandWrittenMixed"]


@workflow.defn(name="HandWrittenMixed")
class HandWrittenMixed:
    """The same 20 tasks as bench/engine.py's DOC, in plain Python."""

    @workflow.run
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        data = {"items": data["items"], "total": 0, "tag": data["tag"]}  # init
        data = {**data, "count": len(data["items"])}  # measure
        if data["count"] > 5:  # route (switch)  # noqa: SIM108 - one branch per task, as in the document
            data = {**data, "size": "large"}  # large
        else:
            data = {**data, "size": "small"}  # small
        for item in data["items"]:  # loop (for) with two tasks per iteration
            data = {**data, "total": data["total"] + item}  # add
            data = {**data, "last": item}  # remember

        async def branch(value: Any) -> Any:
            return value

        results = await asyncio.gather(  # fan (fork) with three branches
            branch({"double": data["total"] * 2}),
            branch({"square": data["total"] ** 2}),
            branch({"upper": data["tag"].upper()}),
        )
        data = {"total": data["total"], "size": data["size"], "fan": list(results)}  # merge
        data = {**data, "double": data["fan"][0]["double"]}  # pick1
        data = {**data, "square": data["fan"][1]["square"]}  # pick2
        data = {**data, "upper": data["fan"][2]["upper"]}  # pick3
        data = {**data, "ok": data["double"] > 0}  # check
        if data["ok"]:  # verdict (switch)  # noqa: SIM108 - one branch per task, as in the document
            data = {**data, "verdict": "good"}  # good
        else:
            data = {**data, "verdict": "bad"}
        return {k: data[k] for k in ("total", "size", "double", "square", "upper", "verdict")}  # shape
