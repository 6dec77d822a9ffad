"""What every command shares: the options of SPEC §2, opening home and database, rendering, errors."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import sys
import traceback
from dataclasses import dataclass, field

import click

from .. import config as config_mod
from .. import db as db_mod
from .. import setup, synclog
from ..errors import SyncError, UsageError


@dataclass
class App:
    home: str | None
    db_url: str | None
    json_out: bool
    _config: config_mod.Config | None = field(default=None, repr=False)

    def config(self, must_exist: bool = True) -> config_mod.Config:
        if self._config is None:
            self._config = config_mod.load(self.home, self.db_url, must_exist=must_exist)
        return self._config

    def open(self) -> config_mod.Config:
        """The configuration, with the database connected and the log file set up."""
        return setup.open_config(self.config())

    def emit(self, data: dict, text: str | None = None) -> None:
        if self.json_out:
            click.echo(json.dumps(data, ensure_ascii=False, default=str, indent=None))
        elif text is not None:
            click.echo(text)

    @property
    def interactive(self) -> bool:
        return not self.json_out and sys.stderr.isatty()


def pass_app(f):
    """click.make_pass_decorator(App), noting first which cajas the command names: a refusal is logged
    under them, so that `log --caja CAJA5` shows a refused `caja edit CAJA5 …` too."""

    @functools.wraps(f)
    def new_func(*args, **kwargs):
        ctx = click.get_current_context()
        ctx.meta["syscafe.cajas"] = named_cajas(ctx)
        return ctx.invoke(f, ctx.find_object(App), *args, **kwargs)

    return new_func


def named_cajas(ctx: click.Context | None) -> list[str]:
    """The cajas a command names: its --caja, its CAJA... arguments, or the NAME of a `caja` command."""
    if ctx is None:
        return []
    params = ctx.params
    given = params.get("caja") or params.get("cajas") or ()
    if not given and ctx.parent is not None and ctx.parent.command.name == "caja":
        given = params.get("name") or ()
    names = [given] if isinstance(given, str) else list(given)
    return list(dict.fromkeys(n for n in names if n))


class Group(click.Group):
    """Turns our errors into one plain sentence and SPEC's exit codes, and logs every refusal."""

    group_class = type

    def resolve_command(self, ctx: click.Context, args):
        name, cmd, rest = super().resolve_command(ctx, args)
        # meta is shared by the whole context chain; the innermost group writes last.
        ctx.meta["syscafe.command"] = f"{ctx.command_path} {name}".split(" ", 1)[-1]
        return name, cmd, rest

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SyncError as exc:
            _log_refusal(ctx, exc)
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:
            _log_usage_error(ctx, exc)
            raise
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as exc:
            # A bug of ours: one sentence for the person, the traceback for the log file. Before the log file is
            # set up there is none: then stderr gets it, never stdout (which may be carrying a --json document).
            where = synclog.file_path()
            if where is not None:
                synclog.logger().error("unexpected error", command=ctx.meta.get("syscafe.command"), exc_info=True)
                told = f"the traceback is in {where}"
            else:
                traceback.print_exc(file=sys.stderr)
                told = "the traceback is above"
            click.echo(f"Error: unexpected {type(exc).__name__}: {exc}; {told}, please report it.", err=True)
            ctx.exit(1)


def _log_refusal(ctx: click.Context, exc: SyncError) -> None:
    """Written to the sync log when the database is open; a refusal before that has nowhere to go but stderr."""
    if db_mod.database.obj is None or db_mod.database.is_closed():
        return
    action = ctx.meta.get("syscafe.command", "command")
    try:
        _record_refusal(action, ctx.meta.get("syscafe.cajas", []), str(exc))
    except Exception:
        pass  # the database may be the very thing that failed


def _log_usage_error(ctx: click.Context, exc: click.UsageError) -> None:
    """A bad option is a refusal too: logged when the home and its database exist, never creating them."""
    if getattr(exc, "_syscafe_logged", False):
        return
    exc._syscafe_logged = True  # nested groups see the same exception
    app = ctx.find_object(App)
    try:
        if db_mod.database.obj is None or db_mod.database.is_closed():
            app.open()
        action = (exc.ctx.command_path if exc.ctx else ctx.command_path).split(" ", 1)[-1]
        # Only the parameters parsed before the bad one are known here: often none.
        _record_refusal(action, named_cajas(exc.ctx), exc.format_message())
    except Exception:
        pass  # no home or no database yet: stderr is the only place for it


def _record_refusal(action: str, cajas: list[str], message: str) -> None:
    """One row per caja the command names (one without a caja if it names none), each found by `log --caja`."""
    for caja in cajas or [None]:
        synclog.record(synclog.Entry(action=action, outcome="refused", caja=caja, level="warning", message=message))


def render_table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class DateParam(click.ParamType):
    """A process date: YYYY-MM-DD, `today` or `yesterday` (in the company's time zone)."""

    name = "DATE"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        text = str(value).strip().lower()
        if text in ("today", "yesterday"):
            return text
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-11-22, or today / yesterday.", param, ctx)


def resolve_day(value, cfg: config_mod.Config) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    today = dt.datetime.now(cfg.timezone).date()
    return today if value == "today" else today - dt.timedelta(days=1)


_RELATIVE = re.compile(r"^(\d+)\s*([mhd])$")


def parse_moment(text: str, cfg: config_mod.Config, what: str) -> dt.datetime:
    """A point in time: ISO date or datetime (company time zone when no offset), today, yesterday, or 30m / 2h / 7d ago."""
    t = text.strip().lower()
    tz = cfg.timezone
    now = dt.datetime.now(tz)
    if t in ("now",):
        return now
    if t in ("today", "yesterday"):
        day = now.date() - dt.timedelta(days=1 if t == "yesterday" else 0)
        return dt.datetime.combine(day, dt.time(), tz)
    m = _RELATIVE.match(t)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        try:
            return now - dt.timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: n})
        except OverflowError:  # 99999999d: before year 1
            raise UsageError(f"{what} {text!r} reaches back before the year 1; give fewer days, or a date like 2026-11-22.") from None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{what} {text!r} is not a time; use 2026-11-22, 2026-11-22T14:00, today, yesterday, or 30m / 2h / 7d."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)
