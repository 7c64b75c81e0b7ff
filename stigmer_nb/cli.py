"""``stigmer-nb``: run workflows headless, read the history, run one side as a worker process.

Exit codes: 0 completed, 1 failed, 2 invalid input or usage (any StigmerError), 130 cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
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


def _read_input(raw: str | None) -> Any:
    if raw is None:
        return None
    text = raw
    if raw.startswith("@"):
        path = Path(raw[1:])
        if not path.exists():
            _fail(f"--input {raw}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            _fail(f"--input {raw}: not UTF-8 (byte offset {exc.start}); save it as UTF-8 JSON")
        except OSError as exc:
            _fail(f"--input {raw}: cannot read it ({exc.strerror or exc})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(
            f"--input is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "pass JSON text or @file.json"
        )
    except RecursionError:
        _fail("--input nests too deeply to read; flatten it")


def _env_pairs(pairs: list[str], secret: bool) -> dict[str, dict[str, Any]]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"{'--secret' if secret else '--env'} {pair!r} must be KEY=VALUE")
        out[key] = {"value": value, "is_secret": secret}
    return out


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


def cmd_run(args: argparse.Namespace) -> NoReturn:
    from .errors import DSLValidationError, StigmerError
    from .lab import Lab
    from .settings import Settings

    data = _read_input(args.input)
    env = {**_env_pairs(args.env, False), **_env_pairs(args.secret, True)}
    path = Path(args.file)
    if not path.exists():
        _fail(f"no workflow file at {path}")
    lab = None
    try:
        from .dsl.parse import parse_workflow

        parse_workflow(path)  # bad documents are refused before a server starts or a row is written
        lab = Lab.create(Settings.from_env(**_options(args)))
        execution = lab.run(path, input=data, name=args.name, runtime_env=env or None)
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
    except DSLValidationError as exc:
        if lab is not None:
            lab.stop()
        print(f"stigmer-nb: {args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        print(exc.report(), file=sys.stderr)
        _leave(EXIT_USAGE)
    except StigmerError as exc:
        if lab is not None:
            lab.stop()
        _fail(str(exc))
    code = {"EXECUTION_COMPLETED": EXIT_COMPLETED, "EXECUTION_CANCELLED": EXIT_CANCELLED}.get(
        result["phase"], EXIT_FAILED
    )
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
    _leave(code)


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


def cmd_cancel(args: argparse.Namespace) -> NoReturn:
    from .errors import StigmerError, TemporalUnreachableError
    from .settings import Settings
    from .temporal.names import invoke_workflow_id

    settings = Settings.from_env(**_options(args))
    target = settings.temporal_host_port or _embedded_target(settings)

    async def go() -> str:
        from temporalio.client import WorkflowExecutionStatus
        from temporalio.service import RPCError, RPCStatusCode

        from .lab import connect_client
        from .temporal.converter import sealing_converter

        converter = sealing_converter(settings)
        client = await connect_client(target, settings, converter)
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
                _fail(f"no execution {args.execution_id} on {target}: check the id")
            _fail(f"cannot cancel {args.execution_id}: {exc}")
        ended = status.name.lower() if status is not None else "ended"
        return f"{args.execution_id} has already ended ({ended}): nothing to cancel"

    try:
        if target is None:
            raise TemporalUnreachableError("(no running lab)", 0, "start a lab or pass --temporal")
        print(asyncio.run(go()))
    except StigmerError as exc:
        _fail(str(exc))
    _leave(0)


def _embedded_target(settings: Any) -> str | None:
    """The running embedded server of ``settings.home`` (from its PID file), if any."""
    try:
        info = json.loads((settings.home / "temporal.pid").read_text())
        return f"127.0.0.1:{int(info['port'])}"
    except (OSError, ValueError, KeyError):
        return None


def cmd_worker(args: argparse.Namespace) -> NoReturn:
    from .errors import StigmerError
    from .settings import Settings

    settings = Settings.from_env(**_options(args))
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stigmer-nb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--home", help="data directory (default: $STIGMER_NB_HOME or .stigmer_nb)")

    run = sub.add_parser("run", help="run a workflow document and print its result")
    run.add_argument("file", help="workflow document (DSL YAML/JSON or a Stigmer WorkflowSpec)")
    run.add_argument("--input", help="workflow input: JSON text or @file.json")
    run.add_argument("--name", help="execution name (default execution-<micros>)")
    run.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="runtime environment value"
    )
    run.add_argument(
        "--secret", action="append", default=[], metavar="KEY=VALUE", help="secret runtime value"
    )
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--timeout", type=float, default=None, help="seconds to wait before giving up")
    run.add_argument("--temporal", help="use this Temporal server instead of the embedded one")
    run.add_argument("--allow-shell", action="store_true", help="allow run: shell and run: script")
    run.add_argument("--time-skipping", action="store_true", help="skip time while workflows only wait")
    common(run)
    run.set_defaults(func=cmd_run)

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

    cancel = sub.add_parser("cancel", help="cancel a running execution")
    cancel.add_argument("execution_id")
    cancel.add_argument("--temporal", help="Temporal server (default: the running lab's embedded server)")
    common(cancel)
    cancel.set_defaults(func=cmd_cancel)

    worker = sub.add_parser("worker", help="run one side as its own process")
    worker.add_argument("side", choices=["stigmer", "runner"])
    worker.add_argument("--temporal", help="Temporal server HOST:PORT (or TEMPORAL_HOST_PORT)")
    worker.add_argument("--allow-shell", action="store_true", help="allow run: shell and run: script")
    common(worker)
    worker.set_defaults(func=cmd_worker)

    validate = sub.add_parser("validate", help="check a workflow document and list every problem")
    validate.add_argument("file")
    validate.set_defaults(func=cmd_validate)
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
