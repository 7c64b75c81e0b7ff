"""Live views under load: comm messages per view per second, and how fast a trivial cell runs."""

# ``python -m bench.widgets`` starts a real kernel (jupyter_client), starts a lab in it, launches
# 200 concurrent executions and displays 50 of them as live views. While they run, this process
# executes ``1 + 1`` cells back to back (timing each round trip to its reply) and records every
# comm message the kernel publishes. Targets (issue 4): at most 4 messages per view per second,
# a trivial cell in at most 100 ms.

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import defaultdict
from typing import Any

from jupyter_client.manager import start_new_kernel

from bench.common import markdown_table, percentile, stats, write_result

__all__ = ["main", "run"]

EXECUTIONS = 200
VIEWS = 50
DOC = """
document: {dsl: '1.0.0', namespace: bench, name: widgets-bench, version: '1.0.0'}
do:
  - start:
      set: {i: '${ .i }'}
  - first:
      wait: {seconds: 2}
  - fan:
      for: {each: x, in: '${ [1, 2, 3, 4, 5] }'}
      do:
        - step:
            set: {x: '${ $x }'}
  - second:
      wait: {seconds: 2}
  - third:
      wait: {seconds: 2}
  - finish:
      set: {done: true}
"""
SETUP = """
import json, stigmer_nb
from IPython.display import display
from stigmer_nb.widgets.execution import view_for
lab = stigmer_nb.start(home={home!r}, durable=False, ui=False)
# Register the workflow first: concurrent first runs of a new document race (see the report).
lab.run({doc!r}, input={{"i": -1}}).wait(120)
"""
LAUNCH = """
import asyncio
# Started together (top-level await), so all of them run at once; the first ones get views.
executions = await asyncio.gather(*(lab.arun({doc!r}, input={{"i": i}}) for i in range({n})))
for e in executions[:{views}]:
    display(e)
    # The panel a person picked (tasks, timeline or graph); that choice's own message is not counted.
    view_for(e).panel.value = {panel!r}
print("VIEWS " + json.dumps({{
    e.id: [w.model_id for w in (view_for(e).status, view_for(e).body, view_for(e).node)]
    for e in executions[:{views}]
}}))
"""
DONE = "print('DONE', sum(e.done for e in executions))"


class Kernel:
    """A kernel, its client, and every iopub message it sends (collected on a thread)."""

    def __init__(self) -> None:
        self.km, self.kc = start_new_kernel(kernel_name="python3")
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except Exception:  # queue.Empty: nothing yet
                continue
            with self._lock:
                self.messages.append((time.monotonic(), msg))

    def execute(self, code: str, timeout: float = 300) -> tuple[float, str]:
        """Run ``code``; seconds until its reply, and its stdout."""
        started = time.monotonic()
        msg_id = self.kc.execute(code)
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        elapsed = time.monotonic() - started
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"cell failed: {reply['content'].get('evalue')}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # its output arrives on iopub, maybe just after
            out = self._stdout(msg_id)
            if self._idle(msg_id):
                return elapsed, out
            time.sleep(0.01)
        return elapsed, self._stdout(msg_id)

    def _stdout(self, msg_id: str) -> str:
        with self._lock:
            return "".join(
                m["content"].get("text", "")
                for _, m in self.messages
                if m["msg_type"] == "stream" and m["parent_header"].get("msg_id") == msg_id
            )

    def _idle(self, msg_id: str) -> bool:
        with self._lock:
            return any(
                m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
                and m["parent_header"].get("msg_id") == msg_id
                for _, m in self.messages
            )

    def comm_updates(self) -> list[tuple[float, str]]:
        with self._lock:
            return [(t, m["content"]["comm_id"]) for t, m in self.messages if m["msg_type"] == "comm_msg"]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def _worst_window(times: list[float], window: float = 1.0) -> int:
    """Most messages inside any ``window``-second interval."""
    times = sorted(times)
    worst, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        worst = max(worst, hi - lo + 1)
    return worst


def run(executions: int = EXECUTIONS, views: int = VIEWS, panel: str = "tasks") -> dict[str, Any]:
    """Run the benchmark; the measured figures."""
    kernel = Kernel()
    try:
        with tempfile.TemporaryDirectory(prefix="stigmer-bench-widgets-") as home:
            kernel.execute(SETUP.format(home=home, doc=DOC))
            idle = [kernel.execute("1 + 1")[0] for _ in range(30)]
            launched = time.monotonic()
            launch_seconds, out = kernel.execute(
                LAUNCH.format(doc=DOC, n=executions, views=views, panel=panel)
            )
            view_ids: dict[str, list[str]] = json.loads(out.split("VIEWS ", 1)[1].splitlines()[0])
            latencies: list[float] = []
            done = 0
            while done < executions:
                for _ in range(10):
                    latencies.append(kernel.execute("1 + 1")[0])
                    time.sleep(0.05)
                _, out = kernel.execute(DONE)
                done = int(out.split()[-1])
                if time.monotonic() - launched > 600:
                    raise TimeoutError(f"only {done} of {executions} executions finished in 10 minutes")
            finished = time.monotonic()
            time.sleep(1.5)  # let the last updates arrive
            updates = kernel.comm_updates()
            kernel.execute("lab.stop()")
    finally:
        kernel.close()

    owner = {comm_id: eid for eid, ids in view_ids.items() for comm_id in ids}
    per_view: dict[str, list[float]] = defaultdict(list)
    for at, comm_id in updates:
        if comm_id in owner:
            per_view[owner[comm_id]].append(at)
    rates, worst = [0.0], [0]
    for eid in view_ids:
        times = per_view.get(eid, [])
        span = max(times[-1] - launched, 1.0) if times else 1.0
        rates.append(len(times) / span)
        worst.append(_worst_window(times))
    busy = stats(latencies)
    return {
        "executions": executions,
        "views": views,
        "panel": panel,
        "launch_seconds": launch_seconds,
        "run_seconds": finished - launched,
        "view_messages_total": sum(len(v) for v in per_view.values()),
        "messages_per_view_per_second_mean": sum(rates[1:]) / max(len(rates) - 1, 1),
        "messages_per_view_per_second_max": max(rates),
        "messages_per_view_in_worst_second_max": max(worst),
        "messages_per_view_min": min((len(per_view.get(e, [])) for e in view_ids), default=0),
        "trivial_cell_ms_idle_median": stats(idle)["median"] * 1000,
        "trivial_cell_ms_median": busy["median"] * 1000,
        "trivial_cell_ms_p95": percentile(latencies, 95) * 1000,
        "trivial_cell_ms_max": busy["max"] * 1000,
        "trivial_cells": len(latencies),
    }


_ROWS = [
    ("concurrent executions / live views", lambda r: f"{r['executions']} / {r['views']}"),
    ("all finished after (s)", lambda r: r["run_seconds"]),
    ("messages per view per second, mean", lambda r: r["messages_per_view_per_second_mean"]),
    ("messages per view per second, busiest view", lambda r: r["messages_per_view_per_second_max"]),
    (
        "messages per view in its busiest second (target ≤ 4)",
        lambda r: r["messages_per_view_in_worst_second_max"],
    ),
    ("trivial cell, median ms (kernel idle, before)", lambda r: r["trivial_cell_ms_idle_median"]),
    ("trivial cell, median ms (during the run)", lambda r: r["trivial_cell_ms_median"]),
    ("trivial cell, p95 ms (target ≤ 100)", lambda r: r["trivial_cell_ms_p95"]),
    ("trivial cell, max ms", lambda r: r["trivial_cell_ms_max"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.widgets", description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=EXECUTIONS)
    parser.add_argument("--views", type=int, default=VIEWS)
    parser.add_argument("--no-control", action="store_true", help="skip the run without views")
    parser.add_argument(
        "--panel", choices=("tasks", "timeline", "graph"), default="tasks", help="the panel each view shows"
    )
    args = parser.parse_args(argv)
    result = run(args.executions, args.views, args.panel)
    control = None if args.no_control else run(args.executions, 0)
    columns = ["metric", "with views"] + ([] if control is None else ["control: no views"])
    rows = []
    for label, value in _ROWS:
        row = {"metric": label, "with views": value(result)}
        if control is not None:
            row["control: no views"] = value(control)
        rows.append(row)
    print(markdown_table(rows, columns))
    name = "widgets" if args.panel == "tasks" else f"widgets-{args.panel}"
    path = write_result(name, {"with_views": result, "control_without_views": control})
    print(f"\nwritten to {path}")
    ok = result["messages_per_view_in_worst_second_max"] <= 4 and result["trivial_cell_ms_p95"] <= 100
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
