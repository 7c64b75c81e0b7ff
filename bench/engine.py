"""Engine benchmark: a 20-task mixed document run by ExecuteServerlessWorkflow directly, against the
same logic hand-written as one temporalio workflow, on the same server in the same run.

Run: ``python -m bench.engine``. Also times a cached jq evaluation.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.common import markdown_table, stats, write_result
from bench.handwritten import HandWrittenMixed
from stigmer_nb._loop import LoopThread
from stigmer_nb.dsl.activities import EffectActivities, Registry
from stigmer_nb.dsl.expressions import evaluate
from stigmer_nb.dsl.workflow import ExecuteServerlessWorkflow
from stigmer_nb.settings import Settings
from stigmer_nb.temporal.server import EmbeddedServer
from stigmer_nb.temporal.types import DSLInput, DSLResult

DOC = yaml.safe_load("""
document: {dsl: '1.0.0', namespace: bench, name: mixed-twenty, version: '1.0.0'}
do:
  - init:
      set: {items: '${ .items }', total: 0, tag: '${ .tag }'}
  - measure:
      set: '${ . + {count: (.items | length)} }'
  - route:
      switch:
        - isLarge: {when: .count > 5, then: large}
        - otherwise: {then: small}
  - small:
      set: '${ . + {size: "small"} }'
      then: loop
  - large:
      set: '${ . + {size: "large"} }'
  - loop:
      for: {each: item, in: .items}
      do:
        - add:
            set: '${ . + {total: (.total + $item)} }'
        - remember:
            set: '${ . + {last: $item} }'
  - fan:
      fork:
        branches:
          - double:
              set: {double: '${ .total * 2 }'}
          - square:
              set: {square: '${ .total * .total }'}
          - upper:
              set: {upper: '${ .tag | ascii_upcase }'}
      output:
        as: '${ {total: $input.total, size: $input.size, fan: .} }'
  - pick1:
      set: '${ . + {double: .fan[0].double} }'
  - pick2:
      set: '${ . + {square: .fan[1].square} }'
  - pick3:
      set: '${ . + {upper: .fan[2].upper} }'
  - check:
      set: '${ . + {ok: (.double > 0)} }'
  - verdict:
      switch:
        - good: {when: .ok, then: good}
        - bad: {then: bad}
  - bad:
      set: '${ . + {verdict: "bad"} }'
      then: shape
  - good:
      set: '${ . + {verdict: "good"} }'
  - shape:
      set: '${ {total, size, double, square, upper, verdict} }'
""")
INPUT = {"items": list(range(1, 11)), "tag": "bench"}
EXPECTED = {"total": 55, "size": "large", "double": 110, "square": 3025, "upper": "BENCH", "verdict": "good"}
RUNS = int(os.environ.get("BENCH_RUNS", "50"))
CONCURRENT = int(os.environ.get("BENCH_CONCURRENT", "50"))


async def _engine(client: Client, queue: str) -> dict[str, Any]:
    result: DSLResult = await client.execute_workflow(
        "ExecuteServerlessWorkflow", DSLInput(document=DOC, input=INPUT), id=f"engine-{uuid.uuid4()}",
        task_queue=queue, result_type=DSLResult,
    )  # fmt: skip
    return result.output


async def _hand(client: Client, queue: str) -> dict[str, Any]:
    return await client.execute_workflow(
        HandWrittenMixed.run, INPUT, id=f"hand-{uuid.uuid4()}", task_queue=queue
    )


async def _latency(fn: Any, client: Client, queue: str) -> list[float]:
    samples = []
    for i in range(RUNS + 5):
        t0 = time.perf_counter()
        out = await fn(client, queue)
        if i >= 5:
            samples.append(time.perf_counter() - t0)
        assert out == EXPECTED, out
    return samples


async def _throughput(fn: Any, client: Client, queue: str, rounds: int = 3) -> list[float]:
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        outs = await asyncio.gather(*(fn(client, queue) for _ in range(CONCURRENT)))
        rates.append(CONCURRENT / (time.perf_counter() - t0))
        assert all(o == EXPECTED for o in outs)
    return rates


def _jq_microseconds() -> float:
    variables = {"context": {"k": 1}, "item": 3}
    evaluate(". + {total: (.total + $item)}", {"total": 1}, variables)
    n = 20_000
    t0 = time.perf_counter()
    for i in range(n):
        evaluate(". + {total: (.total + $item)}", {"total": i}, variables)
    return (time.perf_counter() - t0) / n * 1e6


async def _main() -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    server = await EmbeddedServer.start(Settings.from_env({}, home=home, durable=False, ui=False))
    try:
        client = await Client.connect(server.target)
        engine_q, hand_q = f"engine-{uuid.uuid4()}", f"hand-{uuid.uuid4()}"
        runner = UnsandboxedWorkflowRunner()
        effects = EffectActivities(Registry(), client=client)
        async with (
            Worker(client, task_queue=engine_q, workflows=[ExecuteServerlessWorkflow], activities=effects.all(),
                   workflow_runner=runner),
            Worker(client, task_queue=hand_q, workflows=[HandWrittenMixed], workflow_runner=runner),
        ):  # fmt: skip
            # Interleave so both see the same machine state.
            hand_lat = await _latency(_hand, client, hand_q)
            engine_lat = await _latency(_engine, client, engine_q)
            hand_tp = await _throughput(_hand, client, hand_q)
            engine_tp = await _throughput(_engine, client, engine_q)
    finally:
        await server.stop()
    return {"engine_latency_s": stats(engine_lat), "hand_latency_s": stats(hand_lat),
            "engine_throughput_per_s": stats(engine_tp), "hand_throughput_per_s": stats(hand_tp)}  # fmt: skip


def main() -> dict[str, Any]:
    thread = LoopThread()
    figures = thread.call(_main())
    thread.stop()
    jq_us = _jq_microseconds()
    lat_ratio = figures["engine_latency_s"]["median"] / figures["hand_latency_s"]["median"]
    tp_ratio = figures["engine_throughput_per_s"]["median"] / figures["hand_throughput_per_s"]["median"]
    result = {**figures, "latency_ratio": lat_ratio, "throughput_ratio": tp_ratio, "jq_cached_us": jq_us,
              "targets": {"latency_ratio": 2.0, "throughput_ratio": 0.5, "jq_cached_us": 20}}  # fmt: skip
    write_result("engine", result)
    rows = [
        {"measure": f"engine latency, 20-task doc (ms, median of {RUNS})",
         "value": figures["engine_latency_s"]["median"] * 1000, "target": ""},
        {"measure": "hand-written latency (ms, median)", "value": figures["hand_latency_s"]["median"] * 1000, "target": ""},
        {"measure": "latency ratio", "value": lat_ratio, "target": "≤ 2.0"},
        {"measure": f"engine throughput ({CONCURRENT} concurrent, runs/s)",
         "value": figures["engine_throughput_per_s"]["median"], "target": ""},
        {"measure": "hand-written throughput (runs/s)", "value": figures["hand_throughput_per_s"]["median"], "target": ""},
        {"measure": "throughput ratio", "value": tp_ratio, "target": "≥ 0.5"},
        {"measure": "cached jq evaluation (µs)", "value": jq_us, "target": "≤ 20"},
    ]  # fmt: skip
    print(markdown_table(rows, ["measure", "value", "target"]))
    return result


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
