"""IPython magics: ``%stigmer`` for the lab, ``%%stigmer_run`` for a workflow, ``%%stigmer_sql`` for SQL."""

# ``%load_ext stigmer_nb`` registers them. Every error is one line that says what to do next:
# argument mistakes raise ``UsageError``; stigmer_nb's own errors render through
# ``StigmerError._render_traceback_``.

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .errors import LabStateError, did_you_mean

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .lab import Lab

__all__ = ["StigmerMagics", "register"]

_COMMANDS = ("start", "stop", "status", "ui", "history")
USAGE = """\
%stigmer start [--home PATH] [KEY=VALUE ...]   start the lab (KEY: any start() option, e.g. durable=false)
%stigmer stop                                  stop it
%stigmer status                                where it runs and what the history holds
%stigmer ui [PAGE]                             link to the Temporal Web UI (framed when proxied)
%stigmer history [--workflow W] [--phase P] [--since S] [--limit N]
%%stigmer_run [--input JSON] [--name N]        run the cell (a workflow in YAML)
%%stigmer_sql [--write] [-o VAR]               SQL over the history (read-only unless --write)"""


class _Help(Exception):
    """``--help`` was asked for and printed."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one-line ``UsageError`` instead of exiting the kernel."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        super().__init__(prog=prog, add_help=True, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split()).removeprefix("usage: ")  # one line, unwrapped
        raise UsageError(f"{self.prog}: {message}; usage: {usage}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _Help

    def parse(self, line: str | Sequence[str]) -> argparse.Namespace | None:
        """Parsed arguments, or None when help was printed."""
        try:
            argv = shlex.split(line) if isinstance(line, str) else list(line)
        except ValueError as exc:
            raise UsageError(f"{self.prog}: {exc} (unbalanced quotes?)") from None
        try:
            return self.parse_args(argv)
        except _Help:
            return None


def _require_lab() -> Lab:
    from .lab import current

    lab = current()
    if lab is None or not lab.running:
        raise LabStateError("no lab is running; start one with %stigmer start (or stigmer_nb.start())")
    return lab


def _options(items: Sequence[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"%stigmer start: {item!r} is not KEY=VALUE; e.g. %stigmer start durable=false")
        options[key.strip().replace("-", "_")] = value
    return options


@magics_class
class StigmerMagics(Magics):
    """``%stigmer``, ``%%stigmer_run`` and ``%%stigmer_sql``."""

    # --- %stigmer ------------------------------------------------------------------------------

    @line_magic
    def stigmer(self, line: str) -> Any:
        """Control the lab: ``%stigmer start|stop|status|ui|history`` (``%stigmer`` alone: help)."""
        words = line.split(None, 1)
        if not words:
            print(USAGE)
            return None
        command, rest = words[0], words[1] if len(words) > 1 else ""
        handlers: dict[str, Callable[[str], Any]] = {
            "start": self._start,
            "stop": self._stop,
            "status": self._status,
            "ui": self._ui,
            "history": self._history,
        }
        handler = handlers.get(command)
        if handler is None:
            raise UsageError(
                f"unknown %stigmer command {command!r}{did_you_mean(command, _COMMANDS)}; "
                f"use one of: {', '.join(_COMMANDS)}"
            )
        return handler(rest)

    def _start(self, line: str) -> Lab | None:
        from .lab import Lab, current, start
        from .settings import Settings

        parser = _Parser("%stigmer start")
        parser.add_argument("--home", help="data directory (history, server state, logs)")
        parser.add_argument("options", nargs="*", metavar="KEY=VALUE", help="start() options")
        args = parser.parse(line)
        if args is None:
            return None
        options: dict[str, Any] = _options(args.options)
        settings = Settings.from_env(home=args.home, **options)
        running = current()
        fresh = running is None or not running.running
        if fresh and settings.embedded and settings.ui and not settings.ui_public_path:
            # Inside JupyterLab (and on Binder) the UI is reached through jupyter-server-proxy.
            from .widgets.ui import jupyter_ui_options

            options.update(jupyter_ui_options(settings.ui_port))
        lab = start(home=args.home, **options)
        if self.shell is not None:
            existing = self.shell.user_ns.get("lab")
            if existing is None or isinstance(existing, Lab):  # never clobber a user's own `lab`
                self.shell.user_ns["lab"] = lab
        return lab

    def _stop(self, line: str) -> None:
        from .lab import current

        if line.strip():
            raise UsageError("%stigmer stop takes no arguments")
        lab = current()
        if lab is None or not lab.running:
            print("no lab is running")
            return
        lab.stop()
        print("lab stopped")

    def _status(self, line: str) -> None:
        from .lab import current

        if line.strip():
            raise UsageError("%stigmer status takes no arguments")
        lab = current()
        if lab is None or not lab.running:
            print("no lab is running; start one with %stigmer start")
            return
        settings = lab.settings
        target = lab.server.target if lab.server else settings.temporal_host_port
        kind = "embedded" if lab.server else "external"
        print(f"lab running: Temporal {target} ({kind}, namespace {settings.namespace})")
        ui = lab.temporal_ui()
        print(f"Temporal UI: {ui}")
        print(f"history: {settings.history_path}")
        counts = lab.sql("SELECT phase, count(*) AS n FROM workflow_executions GROUP BY phase ORDER BY phase")
        assert counts is not None
        summary = ", ".join(
            f"{n} {p.removeprefix('EXECUTION_').lower()}" for p, n in counts.itertuples(index=False)
        )
        print(f"executions: {summary or 'none yet'}")

    def _ui(self, line: str) -> Any:
        parser = _Parser("%stigmer ui")
        parser.add_argument("page", nargs="?", help="a UI page, e.g. namespaces/default/workflows")
        args = parser.parse(line)
        if args is None:
            return None
        return _require_lab().temporal_ui(args.page)

    def _history(self, line: str) -> Any:
        parser = _Parser("%stigmer history")
        parser.add_argument("--workflow", help="workflow name, slug or id")
        parser.add_argument("--phase", help="completed, failed, cancelled, running, …")
        parser.add_argument("--since", help="an age (15min, 2h, 7d) or an ISO time")
        parser.add_argument("--limit", type=int, help="newest N executions")
        parser.add_argument("--tag", help="only executions with this tag")
        args = parser.parse(line)
        if args is None:
            return None
        return _require_lab().history(
            workflow=args.workflow, phase=args.phase, since=args.since, limit=args.limit, tag=args.tag
        )

    # --- %%stigmer_run -------------------------------------------------------------------------

    @cell_magic
    def stigmer_run(self, line: str, cell: str) -> Any:
        """Run the cell (a workflow document in YAML): ``%%stigmer_run [--input JSON] [--name N]
        [--tag T ...]``. ``--input`` also takes the name of a variable holding the input."""
        parser = _Parser("%%stigmer_run")
        parser.add_argument("--input", help="the input as JSON, or the name of a variable")
        parser.add_argument("--name", help="execution name (unique)")
        parser.add_argument("--tag", action="append", help="a tag (repeat for more)")
        args = parser.parse(line)
        if args is None:
            return None
        if not cell.strip():
            raise UsageError(
                "%%stigmer_run: the cell is empty; write the workflow document (YAML) below the magic"
            )
        lab = _require_lab()
        return lab.run(cell, input=self._input(args.input), name=args.name, tags=args.tag)

    def _input(self, text: str | None) -> Any:
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            namespace = self.shell.user_ns if self.shell is not None else {}
            if text.isidentifier() and text in namespace:
                return namespace[text]
            raise UsageError(
                f"%%stigmer_run: --input is not JSON ({exc}); quote it, e.g. --input '{{\"n\": 3}}', "
                "or pass the name of a variable"
            ) from None

    # --- %%stigmer_sql -------------------------------------------------------------------------

    @cell_magic
    def stigmer_sql(self, line: str, cell: str) -> Any:
        """SQL over the history: ``%%stigmer_sql [--write] [-o VAR]``; returns a DataFrame."""
        parser = _Parser("%%stigmer_sql")
        parser.add_argument("--write", action="store_true", help="allow statements that change the history")
        parser.add_argument("-o", "--out", metavar="VAR", help="also store the DataFrame in VAR")
        args = parser.parse(line)
        if args is None:
            return None
        if not cell.strip():
            raise UsageError("%%stigmer_sql: the cell is empty; write a query below the magic")
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"%%stigmer_sql: -o {args.out!r} is not a variable name")
        frame = _require_lab().sql(cell, write=args.write)
        if args.out is not None and self.shell is not None:
            self.shell.user_ns[args.out] = frame
        return frame


def register(ipython: InteractiveShell) -> None:
    """Register the magics on ``ipython`` (what ``%load_ext stigmer_nb`` calls)."""
    ipython.register_magics(StigmerMagics)
