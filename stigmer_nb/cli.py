"""``stigmer-nb``: run workflows headless, steer running executions, read the history, run workers.

Exit codes:

- 0: done (``run``, ``rerun``, ``recover``: the execution completed; ``terminate`` and ``cancel``
  of an execution that has already ended: nothing to do)
- 1: the execution failed (``run``, ``rerun``, ``recover``)
- 2: invalid input or usage, or a request that cannot be done (any StigmerError: a bad document,
  no such execution, it has ended, it waits for no approval, no lab running, the history held by
  a running lab …), said in one line on stderr
- 130: the execution was cancelled or terminated (Ctrl-C cancels it)

``pause``, ``resume``, ``terminate``, ``approve``, ``reject`` and ``send-event`` act through
Temporal only, on an execution of a running lab: its embedded server (found through the home's
PID file) or ``--temporal``. ``rerun`` and ``recover`` need the history, so like ``run`` they
start a lab of their own on the home, which no other lab may hold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main"]

EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def _leave(code: int) -> NoReturn:
    # temporalio's Rust bridge can abort the interpreter at shutdown (sdk-python#300); the lab is
    # already stopped in order, so flush and leave without running finalizers.
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    print(f"stigmer-nb: {message}", file=sys.stderr)
    _leave(code)


def _read_json(raw: str | None, flag: str = "--input") -> Any:
    """JSON text or ``@file`` given to ``flag``, parsed (None when not given)."""
    if raw is None:
        return None
    text = raw
    if raw.startswith("@"):
        path = Path(raw[1:])
        if not path.exists():
            _fail(f"{flag} {raw}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            _fail(f"{flag} {raw}: not UTF-8 (byte offset {exc.start}); save it as UTF-8 JSON")
        except OSError as exc:
            _fail(f"{flag} {raw}: cannot read it ({exc.strerror or exc})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(
            f"{flag} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "pass JSON text or @file.json"
        )
    except RecursionError:
        _fail(f"{flag} nests too deeply to read; flatten it")


def _env_pairs(pairs: list[str], secret: bool) -> dict[str, dict[str, Any]]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"{'--secret' if secret else '--env'} {pair!r} must be KEY=VALUE")
        out[key] = {"value": value, "is_secret": secret}
    return out


def _runtime_env(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {**_env_pairs(args.env, False), **_env_pairs(args.secret, True)}


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if getattr(args, "home", None):
        options["home"] = args.home
    if getattr(args, "temporal", None):
        options["temporal_host_port"] = args.temporal
    if getattr(args, "allow_shell", False):
        options["allow_shell"] = True
    if getattr(args, "time_skipping", False):
        options["time_skipping"] = True
    return options


def _task_rows(execution: Any) -> list[dict[str, Any]]:
    rows = []
    for task in execution.lab.service.snapshot(execution.id).tasks:
        rows.append(
            {
                "reference": task.reference,
                "name": task.name,
                "kind": task.kind,
                "status": task.status,
                "started_at": task.started_at.isoformat() if task.started_at else None,
                "completed_at": task.completed_at.isoformat() if task.completed_at else None,
                "error": task.error,
            }
        )
    return rows


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(no rows)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


# --- commands -------------------------------------------------------------------------------


_PHASE_CODES = {
    "EXECUTION_COMPLETED": EXIT_COMPLETED,
    "EXECUTION_CANCELLED": EXIT_CANCELLED,
    "EXECUTION_TERMINATED": EXIT_CANCELLED,
}


def _exit_code(phase: str) -> int:
    """The exit code of an execution that ended in ``phase`` (anything else counts as failed)."""
    return _PHASE_CODES.get(phase, EXIT_FAILED)


def _check_document(path: Path, shown: str, flag: str = "") -> None:
    """Refuse a missing or invalid document before a server starts or a row is written."""
    from .dsl.parse import parse_workflow
    from .errors import DSLValidationError, StigmerError

    if not path.exists():
        _fail(f"no workflow file at {path}")
    try:
        parse_workflow(path)
    except DSLValidationError as exc:
        print(f"stigmer-nb: {flag}{shown}: {len(exc.problems)} problem(s)", file=sys.stderr)
        print(exc.report(), file=sys.stderr)
        _leave(EXIT_USAGE)
    except StigmerError as exc:
        _fail(str(exc))


def _headless(
    args: argparse.Namespace,
    start: Callable[[Any], Any],
    *,
    link: str | None = None,
    held: str = "stop it, or pass --home DIR to use another home",
) -> NoReturn:
    """Start a lab on the home, ``start(lab)`` one execution, wait for it, print it, stop the lab
    and leave with the execution's exit code. ``link``: the record field naming the execution it
    came from (printed with its id); ``held``: what to do when a running lab holds the home."""
    from .errors import DSLValidationError, HistoryLockedError, StigmerError
    from .lab import Lab

    settings = _settings(args)
    lab = None
    try:
        lab = Lab.create(settings)
        execution = start(lab)
        record = execution.record
        if not args.json:
            origin = getattr(record, link) if link else None
            how = {"rerun_of_id": "re-run of", "recovered_from_id": "recovery of"}.get(link or "")
            print(f"started {record.id}" + (f" ({how} {origin})" if origin else ""), flush=True)
        cancelled = False

        def on_interrupt(signum: int, frame: Any) -> None:
            nonlocal cancelled
            if not cancelled:
                cancelled = True
                print("stigmer-nb: cancelling (Ctrl-C again to leave at once)", file=sys.stderr)
                lab.cancel(execution.id)
            else:
                _leave(EXIT_CANCELLED)

        signal.signal(signal.SIGINT, on_interrupt)
        signal.signal(signal.SIGTERM, on_interrupt)
        execution.wait(args.timeout)
        record = execution.record
        tasks = _task_rows(execution)
        result = {
            "execution_id": record.id,
            "phase": record.phase.name,
            "output": record.output,
            "error": record.error,
            "tasks": tasks,
        }
        if link:
            result[link] = getattr(record, link)
    except DSLValidationError as exc:
        if lab is not None:
            lab.stop()
        print(f"stigmer-nb: {len(exc.problems)} problem(s)", file=sys.stderr)
        print(exc.report(), file=sys.stderr)
        _leave(EXIT_USAGE)
    except HistoryLockedError:
        if lab is not None:
            lab.stop()
        _fail(f"a running lab holds the history of {settings.home}: {held}")
    except StigmerError as exc:
        if lab is not None:
            lab.stop()
        _fail(str(exc))
    except KeyboardInterrupt:  # before the execution started: nothing to cancel
        if lab is not None:
            lab.stop()
        _leave(EXIT_CANCELLED)
    lab.stop()
    if args.json:
        print(json.dumps(result, default=str))
    else:
        _print_table(tasks, ["name", "kind", "status", "started_at", "completed_at"])
        print(f"\n{result['execution_id']}  {result['phase']}")
        if result["error"]:
            print(json.dumps(result["error"], indent=2))
        else:
            print(json.dumps(result["output"], indent=2, default=str))
    _leave(_exit_code(result["phase"]))


def cmd_run(args: argparse.Namespace) -> NoReturn:
    data = _read_json(args.input)
    env = _runtime_env(args)
    path = Path(args.file)
    _check_document(path, args.file)
    _headless(args, lambda lab: lab.run(path, input=data, name=args.name, runtime_env=env or None))


def _held_by_lab(execution_id: str, how: str) -> str:
    return f"stop that lab and try again, or {how} it there: lab.execution({execution_id!r}).{how}(...)"


def cmd_rerun(args: argparse.Namespace) -> NoReturn:
    from .control import SAME

    data = SAME if args.input is None else _read_json(args.input)
    env = _runtime_env(args)

    def start(lab: Any) -> Any:
        return lab.execution(args.execution_id).rerun(input=data, name=args.name, runtime_env=env or None)

    _headless(args, start, link="rerun_of_id", held=_held_by_lab(args.execution_id, "rerun"))


def cmd_recover(args: argparse.Namespace) -> NoReturn:
    fixed = Path(args.file) if args.file else None
    if fixed is not None:
        _check_document(fixed, args.file, "--file ")
    env = _runtime_env(args)

    def start(lab: Any) -> Any:
        return lab.execution(args.execution_id).recover(
            document=fixed, name=args.name, runtime_env=env or None
        )

    _headless(args, start, link="recovered_from_id", held=_held_by_lab(args.execution_id, "recover"))


def _open_store(args: argparse.Namespace, *, write: bool = False) -> Any:
    from .settings import Settings
    from .store import HistoryStore

    settings = Settings.from_env(**_options(args))
    return HistoryStore(
        settings.history_path, read_only=not write, protected=(settings.home, settings.home / "codec.key")
    )


def cmd_history(args: argparse.Namespace) -> NoReturn:
    from .errors import StigmerError

    try:
        store = _open_store(args)
        df = store.query(
            "SELECT id, name, workflow_name, phase, created_at, started_at, completed_at "
            "FROM workflow_executions "
            "ORDER BY created_at DESC LIMIT ?",
            [args.limit],
        )
        store.close()
    except StigmerError as exc:
        _fail(str(exc))
    if args.json:
        print(df.to_json(orient="records", date_format="iso"))
    else:
        _print_table(df.to_dict("records"), list(df.columns))
    _leave(0)


def cmd_sql(args: argparse.Namespace) -> NoReturn:
    from .errors import StigmerError

    try:
        store = _open_store(args, write=args.write)
        df = store.sql(args.query, write=args.write)
        store.close()
    except StigmerError as exc:
        _fail(str(exc))
    if df is None:
        _leave(0)
    if args.json:
        print(df.to_json(orient="records", date_format="iso"))
    else:
        _print_table(df.to_dict("records"), list(df.columns))
    _leave(0)


def _settings(args: argparse.Namespace) -> Any:
    from .errors import StigmerError
    from .settings import Settings

    try:
        return Settings.from_env(**_options(args))
    except StigmerError as exc:
        _fail(str(exc))


def _embedded_target(settings: Any) -> str | None:
    """The running embedded server of ``settings.home`` (from its PID file), if any."""
    try:
        info = json.loads((settings.home / "temporal.pid").read_text())
        return f"127.0.0.1:{int(info['port'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _steer(args: argparse.Namespace, act: Callable[[Any, str], Awaitable[str]]) -> NoReturn:
    """Connect to the running lab's Temporal server (or ``--temporal``), print what ``act(client,
    target)`` did in one line and leave 0; any refusal is one line on stderr and exit 2."""
    settings = _settings(args)
    target = settings.temporal_host_port or _embedded_target(settings)
    if target is None:
        _fail(
            f"no lab is running on {settings.home}: pass --home DIR of the running lab, or "
            "--temporal HOST:PORT (or set TEMPORAL_HOST_PORT) for a Temporal cluster"
        )

    from temporalio.service import RPCError

    from .errors import StigmerError

    async def go() -> str:
        return await act(await _connect(target, settings), target)

    try:
        line = asyncio.run(go())
    except StigmerError as exc:
        _fail(str(exc))
    except RPCError as exc:
        _fail(f"Temporal at {target} refused the request: {exc.message or exc.status}")
    print(line)
    _leave(0)


async def _connect(target: str, settings: Any) -> Any:
    """A client for ``target`` with the home's codec (without importing the lab)."""
    from .temporal.connect import connect_client
    from .temporal.converter import sealing_converter

    converter = sealing_converter(settings)  # a bad STIGMER_NB_CODEC_KEY says so, not "unreachable"
    return await connect_client(target, settings, converter)


_START_WAIT = 10.0
"""Seconds ``terminate`` waits for the DSL run of an execution that has not started it yet."""


async def _locate(client: Any, execution_id: str) -> str:
    """Where the execution is, as Temporal sees it: ``running`` (its DSL run is), ``starting``
    (its run does not exist yet), ``ended`` or ``unknown``."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError, RPCStatusCode

    from .temporal.names import dsl_workflow_id, invoke_workflow_id

    for workflow_id, alive in (
        (dsl_workflow_id(execution_id), "running"),
        (invoke_workflow_id(execution_id), "starting"),
    ):
        try:
            status = (await client.get_workflow_handle(workflow_id).describe()).status
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue
            raise
        return alive if status == WorkflowExecutionStatus.RUNNING else "ended"
    return "unknown"


def _unknown(execution_id: str, target: str) -> NoReturn:
    _fail(f"no execution {execution_id} on Temporal at {target}: check the id, and --home or --temporal")


async def _require_run(client: Any, target: str, execution_id: str, doing: str, *, starting: bool) -> None:
    """Leave with exit 2 unless the execution's DSL run is in progress (or, with ``starting``,
    about to be: a pause or resume waits a moment for it)."""
    where = await _locate(client, execution_id)
    if where == "unknown":
        _unknown(execution_id, target)
    if where == "ended":
        _fail(f"execution {execution_id} has ended: there is nothing to {doing}")
    if where == "starting" and not starting:
        _fail(f"execution {execution_id} has not started its run yet: {doing} it once it runs")


def cmd_pause(args: argparse.Namespace) -> NoReturn:
    from .temporal import steer

    async def act(client: Any, target: str) -> str:
        await _require_run(client, target, args.execution_id, "pause", starting=True)
        await steer.pause(client, args.execution_id, args.reason or "")
        return (
            f"pause requested for {args.execution_id}: it stops at its next task boundary "
            f"(EXECUTION_PAUSED); `stigmer-nb resume {args.execution_id}` lets it go on"
        )

    _steer(args, act)


def cmd_resume(args: argparse.Namespace) -> NoReturn:
    from .temporal import steer

    async def act(client: Any, target: str) -> str:
        await _require_run(client, target, args.execution_id, "resume", starting=True)
        await steer.resume(client, args.execution_id, args.reason or "")
        return f"resume requested for {args.execution_id}"

    _steer(args, act)


def cmd_terminate(args: argparse.Namespace) -> NoReturn:
    from .temporal import steer

    eid = args.execution_id
    reason = args.reason or "terminated from the command line"

    async def act(client: Any, target: str) -> str:
        deadline = time.monotonic() + _START_WAIT
        while True:
            if await steer.terminate_run(client, eid, reason):
                return f"terminated {eid}: it ends EXECUTION_TERMINATED"
            # No run in progress: the execution is unknown, over, or has not started its run.
            where = await _locate(client, eid)
            if where == "unknown":
                _unknown(eid, target)
            if where == "ended":
                return f"{eid} has already ended: nothing to terminate"
            if where == "starting" and time.monotonic() >= deadline:
                _fail(
                    f"execution {eid} has not started its run after {_START_WAIT:g}s, so there is "
                    f"nothing to terminate yet: try again, or cancel it: stigmer-nb cancel {eid}"
                )
            await asyncio.sleep(0.1)

    _steer(args, act)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in a container
        return "cli"


def _decide(args: argparse.Namespace, approved: bool) -> NoReturn:
    from .temporal import steer

    doing, done = ("approve", "approved") if approved else ("reject", "rejected")

    async def act(client: Any, target: str) -> str:
        await _require_run(client, target, args.execution_id, doing, starting=False)
        entry = await steer.decide(
            client,
            args.execution_id,
            approved=approved,
            comment=args.comment,
            by=args.by or _user(),
            task=args.task,
        )
        return f"{done} task {entry.get('name')!r} of {args.execution_id}"

    _steer(args, act)


def cmd_approve(args: argparse.Namespace) -> NoReturn:
    _decide(args, True)


def cmd_reject(args: argparse.Namespace) -> NoReturn:
    _decide(args, False)


def cmd_send_event(args: argparse.Namespace) -> NoReturn:
    from .errors import StigmerError
    from .temporal import steer

    event: dict[str, Any] = {"type": args.type}
    if args.data is not None:
        event["data"] = _read_json(args.data, "--data")
    try:
        event = steer.complete_event(event, source=args.source or "stigmer-nb://cli")
    except StigmerError as exc:  # an empty --type
        _fail(str(exc))

    async def act(client: Any, target: str) -> str:
        await _require_run(client, target, args.execution_id, "send an event to", starting=False)
        await steer.send_event(client, args.execution_id, event)
        return f"sent {event['type']} event {event['id']} to {args.execution_id}"

    _steer(args, act)


def cmd_cancel(args: argparse.Namespace) -> NoReturn:
    from .temporal.names import invoke_workflow_id

    async def act(client: Any, target: str) -> str:
        from temporalio.client import WorkflowExecutionStatus
        from temporalio.service import RPCError, RPCStatusCode

        handle = client.get_workflow_handle(invoke_workflow_id(args.execution_id))
        # The server accepts a cancel of a closed workflow silently: look first, so an ended
        # execution says so (nothing to do, as lab.cancel) and an unknown id is an error.
        try:
            status = (await handle.describe()).status
            if status == WorkflowExecutionStatus.RUNNING:
                await handle.cancel()
                return f"cancel requested for {args.execution_id}"
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                _unknown(args.execution_id, target)
            _fail(f"cannot cancel {args.execution_id}: {exc}")
        ended = status.name.lower() if status is not None else "ended"
        return f"{args.execution_id} has already ended ({ended}): nothing to cancel"

    _steer(args, act)


def cmd_worker(args: argparse.Namespace) -> NoReturn:
    from .errors import StigmerError

    settings = _settings(args)
    if not settings.temporal_host_port:
        _fail("a worker needs a Temporal server: pass --temporal HOST:PORT or set TEMPORAL_HOST_PORT")
    try:
        asyncio.run(_run_worker(args.side, settings))
    except StigmerError as exc:
        _fail(str(exc))
    _leave(0)


async def _run_worker(side: str, settings: Any) -> None:
    from . import logs
    from .dsl.activities import EffectActivities, Registry
    from .dsl.events import broadcast
    from .lab import connect_client
    from .runner.execute import TemporalContext
    from .temporal.codec import SecretValues
    from .temporal.converter import sealing_converter
    from .temporal.workers import runner_side_workers, stigmer_side_workers

    values = SecretValues()
    # Failed activity attempts and their tracebacks go to <home>/workers.log, not stderr (a run
    # exits through os._exit: the file is flushed after each line).
    logs.attach(settings.home, redact=values.redact)
    asyncio.get_running_loop().set_exception_handler(logs.loop_exception_handler)
    converter = sealing_converter(settings, values)
    client = await connect_client(settings.temporal_host_port, settings, converter)
    store = None
    effects: EffectActivities | None = None
    if side == "stigmer":
        from .service import Service
        from .store import HistoryStore

        store = HistoryStore(settings.history_path, protected=(settings.home, settings.home / "codec.key"))
        service = Service(store, max_input_bytes=settings.max_input_bytes, secret_sink=values.add)
        workers = stigmer_side_workers(client, settings, service)
    else:

        async def events(event: dict[str, Any], emitter: str | None = None) -> int:
            also = [emitter] if emitter else []
            return await broadcast(
                client,
                event,
                task_queue=settings.zigflow_queue,
                schedule_queue=settings.stigmer_queue,
                also=also,
            )

        from .runner.execute import TemporalWorkflows

        effects = EffectActivities(
            Registry(),
            client=client,
            workflows=TemporalWorkflows(client),
            events=events,
            allow_shell=settings.allow_shell,
        )
        workers = runner_side_workers(client, settings, context=TemporalContext(client), effects=effects)
        from .temporal.recovery import release_running

        # A runner restarted after a crash frees what its predecessor held, at once.
        await release_running(client, settings.stigmer_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(w.run()) for w in workers]
    queues = ", ".join(w.task_queue for w in workers)
    print(
        f"stigmer-nb worker {side}: polling {queues} on {settings.temporal_host_port}"
        f" (log: {logs.log_path(settings.home)})",
        flush=True,
    )
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for worker in workers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.shutdown(), timeout=15)
    await asyncio.gather(*tasks, return_exceptions=True)
    if effects is not None:
        await effects.close()
    if store is not None:
        store.close()
    for task in done:
        if task is not waiter and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def cmd_validate(args: argparse.Namespace) -> NoReturn:
    from .dsl.parse import parse_workflow
    from .errors import DSLValidationError, StigmerError

    try:
        parse_workflow(Path(args.file))
    except DSLValidationError as exc:
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        print(exc.report(), file=sys.stderr)
        _leave(EXIT_USAGE)
    except StigmerError as exc:
        _fail(str(exc))
    print(f"{args.file}: valid")
    _leave(0)


_GRAPH_FORMATS = {".svg": "svg", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid"}


def cmd_graph(args: argparse.Namespace) -> NoReturn:
    from .errors import DSLValidationError, StigmerError
    from .graph import for_document

    path = Path(args.file)
    if not path.exists():
        _fail(f"no workflow file at {path}")
    fmt = args.format or _GRAPH_FORMATS.get(
        Path(args.output).suffix.lower() if args.output else "", "mermaid"
    )
    try:
        drawn = for_document(path)
        text = {"mermaid": lambda: drawn.mermaid, "dot": lambda: drawn.dot, "svg": lambda: drawn.svg}[fmt]()
    except DSLValidationError as exc:
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        print(exc.report(), file=sys.stderr)
        _leave(EXIT_USAGE)
    except StigmerError as exc:
        _fail(str(exc))
    if not args.output:
        sys.stdout.write(text)
        _leave(0)
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"-o {args.output}: cannot write it ({exc.strerror or exc})")
    print(f"{args.output}: {fmt}, {len(drawn.refs)} tasks")
    _leave(0)


_EPILOG = """exit codes:
  0    done (run, rerun, recover: the execution completed)
  1    the execution failed
  2    invalid input or usage, or a request that cannot be done (one line on stderr)
  130  the execution was cancelled or terminated

pause, resume, terminate, approve, reject, send-event and cancel reach a running lab: its
embedded server (through --home) or --temporal HOST:PORT; rerun and recover start a lab of
their own on --home, as run does (no other lab may be running there)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stigmer-nb",
        description=__doc__.splitlines()[0].replace("``", ""),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--home", metavar="DIR", help="data directory (default: $STIGMER_NB_HOME or .stigmer_nb)"
        )

    def headless(p: argparse.ArgumentParser, verb: str) -> None:
        p.add_argument("--name", help="execution name (default execution-<micros>)")
        p.add_argument(
            "--env", action="append", default=[], metavar="KEY=VALUE", help="runtime environment value"
        )
        p.add_argument(
            "--secret", action="append", default=[], metavar="KEY=VALUE", help="secret runtime value"
        )
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument(
            "--timeout", type=float, default=None, metavar="SECONDS", help="seconds to wait before giving up"
        )
        p.add_argument(
            "--temporal", metavar="HOST:PORT", help="use this Temporal server instead of the embedded one"
        )
        p.add_argument("--allow-shell", action="store_true", help="allow run: shell and run: script")
        p.add_argument("--time-skipping", action="store_true", help="skip time while workflows only wait")
        common(p)
        p.epilog = (
            f"Starts a lab on --home, {verb}, waits and exits 0 completed, 1 failed, "
            "2 invalid input or usage, 130 cancelled or terminated (Ctrl-C cancels it)."
        )

    def steering(p: argparse.ArgumentParser, done: str) -> None:
        p.add_argument("execution_id")
        p.add_argument(
            "--temporal",
            metavar="HOST:PORT",
            help="Temporal server HOST:PORT (default: TEMPORAL_HOST_PORT, else the embedded server "
            "of the lab running on --home)",
        )
        common(p)
        p.epilog = (
            f"Exit codes: 0 {done}, 2 no such execution, or it cannot be done now (the message says why)."
        )

    run = sub.add_parser("run", help="run a workflow document and print its result")
    run.add_argument("file", help="workflow document (DSL YAML/JSON or a Stigmer WorkflowSpec)")
    run.add_argument("--input", metavar="JSON", help="workflow input: JSON text or @file.json")
    headless(run, "runs the document")
    run.set_defaults(func=cmd_run)

    rerun = sub.add_parser(
        "rerun", help="run an execution again (same document version and input) as a new one"
    )
    rerun.add_argument("execution_id", help="the execution to run again")
    rerun.add_argument(
        "--input", metavar="JSON", help="another input: JSON text or @file.json (default: the same)"
    )
    headless(rerun, "starts the re-run (linked by rerun_of_id)")
    rerun.set_defaults(func=cmd_rerun)

    recover = sub.add_parser(
        "recover", help="resume a failed execution from the task it failed in, as a new one"
    )
    recover.add_argument("execution_id", help="the FAILED execution")
    recover.add_argument(
        "--file",
        metavar="FIXED.yaml",
        help="the fixed document (it must keep the failed task's name; default: the same)",
    )
    headless(recover, "starts the recovery (linked by recovered_from_id)")
    recover.set_defaults(func=cmd_recover)

    pause = sub.add_parser("pause", help="stop a running execution at its next task boundary")
    pause.add_argument("--reason", metavar="TEXT", help="noted in the execution's lifecycle log")
    steering(pause, "pause requested")
    pause.set_defaults(func=cmd_pause)

    resume = sub.add_parser("resume", help="let a paused execution go on")
    resume.add_argument("--reason", metavar="TEXT", help="noted in the execution's lifecycle log")
    steering(resume, "resume requested")
    resume.set_defaults(func=cmd_resume)

    terminate = sub.add_parser(
        "terminate", help="stop an execution at once, no task finishing (EXECUTION_TERMINATED)"
    )
    terminate.add_argument("--reason", metavar="TEXT", help="why (recorded with the execution)")
    steering(terminate, "terminated or already ended")
    terminate.set_defaults(func=cmd_terminate)

    for verb, func, helped in (
        ("approve", cmd_approve, "approve the approval task an execution waits on"),
        ("reject", cmd_reject, "reject the approval task an execution waits on"),
    ):
        decide = sub.add_parser(verb, help=helped)
        decide.add_argument("--comment", metavar="TEXT", help="the decision's comment (in the task's output)")
        decide.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
        decide.add_argument(
            "--task", metavar="NAME", help="the approval task's name or id, when several wait"
        )
        steering(decide, f"{verb}{'d' if verb.endswith('e') else 'ed'} (the task's name is printed)")
        decide.set_defaults(func=func)

    send = sub.add_parser("send-event", help="send a CloudEvent to one running execution")
    send.add_argument("--type", required=True, metavar="TYPE", help="the event's type")
    send.add_argument("--data", metavar="JSON", help="the event's data: JSON text or @file.json")
    send.add_argument("--source", metavar="URI", help="the event's source (default stigmer-nb://cli)")
    steering(send, "event sent")
    send.set_defaults(func=cmd_send_event)

    cancel = sub.add_parser("cancel", help="cancel a running execution")
    steering(cancel, "cancel requested or already ended")
    cancel.set_defaults(func=cmd_cancel)

    history = sub.add_parser("history", help="list recorded executions")
    history.add_argument("--limit", type=int, default=50)
    history.add_argument("--json", action="store_true")
    common(history)
    history.set_defaults(func=cmd_history)

    sql = sub.add_parser("sql", help="SQL over the history (read-only unless --write)")
    sql.add_argument("query")
    sql.add_argument("--write", action="store_true", help="allow statements that change the history")
    sql.add_argument("--json", action="store_true")
    common(sql)
    sql.set_defaults(func=cmd_sql)

    worker = sub.add_parser("worker", help="run one side as its own process")
    worker.add_argument("side", choices=["stigmer", "runner"])
    worker.add_argument(
        "--temporal", metavar="HOST:PORT", help="Temporal server HOST:PORT (or TEMPORAL_HOST_PORT)"
    )
    worker.add_argument("--allow-shell", action="store_true", help="allow run: shell and run: script")
    common(worker)
    worker.set_defaults(func=cmd_worker)

    validate = sub.add_parser("validate", help="check a workflow document and list every problem")
    validate.add_argument("file")
    validate.set_defaults(func=cmd_validate)

    draw = sub.add_parser("graph", help="draw a workflow document: Mermaid, Graphviz DOT or SVG")
    draw.add_argument("file", help="workflow document (DSL YAML/JSON or a Stigmer WorkflowSpec)")
    draw.add_argument(
        "--format",
        choices=["mermaid", "svg", "dot"],
        help="what to write (default: from -o's extension, .svg .dot .gv .mmd, else mermaid)",
    )
    draw.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    draw.epilog = "Exit codes: 0 drawn, 2 invalid document (every problem listed on stderr)."
    draw.set_defaults(func=cmd_graph)
    return parser


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``stigmer-nb`` command."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        _leave(EXIT_USAGE if exc.code not in (0, None) else 0)
    args.func(args)
    _leave(0)


if __name__ == "__main__":
    main()
