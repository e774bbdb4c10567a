"""Turn cmcgns errors into a one-line message and exit code 2 instead of a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer
from rich.console import Console

from cmcgns.errors import CmcgnsError

err_console = Console(stderr=True)


def reports_errors(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CmcgnsError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # read-only filesystem, disk full, permissions: the file and the reason, no traceback
            where = exc.filename or "a file"
            err_console.print(
                f"[bold red]error:[/] {where}: {exc.strerror or exc}", markup=True, highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None

    return wrapper


def parse_options(pairs: list[str] | None) -> dict:
    from cmcgns.config.overrides import apply_overrides

    return apply_overrides({}, list(pairs or []))
