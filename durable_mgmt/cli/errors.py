"""Errors → one line on stderr and an exit code, decided in this one place.

Operators script these commands, so the exit code is part of the interface:

    0  done
    1  refused or not found: unknown instance or hub, wrong state, storage
       failure, timeout, confirmation declined
    2  usage error: a bad option value, setting or filter (nothing was done)
  141  the reader of stdout went away (``| head``): what a shell reports for
       SIGPIPE, so ``set -o pipefail`` scripts see it and 1 keeps one meaning

Every error prints exactly one line, ``Error: <what was wrong>. <what to do>``;
a traceback is never shown for an error we expected. ``DurableGroup`` applies
this to every subcommand, including click's own parse errors, whose default
rendering (usage line, blank line, message) is three lines.
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import (DurableError, InstanceNotFailed, InstanceNotFound, InstanceNotRunning, InstanceNotTerminal,
                      InvalidInput)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE

# What to do next, added after the library's own message where that message says only what was wrong.
_HINTS: list[tuple[type[DurableError], str]] = [
    (InstanceNotFound, "List the instances with 'funcpy durable get-instances --all', and check --task-hub-name."),
    (InstanceNotFailed, "Check its status with 'funcpy durable get-runtime-status --id ...'."),
    (InstanceNotRunning, "It has finished; use 'funcpy durable get-runtime-status' to see how."),
    (InstanceNotTerminal, "Terminate it first with 'funcpy durable terminate --id ...', or wait for it to finish."),
]


def exit_code_for(err: DurableError) -> int:
    """The exit code of a library error: 2 for a bad input (nothing done), 1 for everything else."""
    return EXIT_USAGE if isinstance(err, InvalidInput) else EXIT_REFUSED


class CliError(click.ClickException):
    """An error shown as one line: ``Error: message``."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED):
        super().__init__(one_line(message))
        self.exit_code = exit_code

    def show(self, file=None) -> None:  # click's signature
        click.echo(f"Error: {self.format_message()}", err=True)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def from_durable_error(err: DurableError) -> CliError:
    message = one_line(str(err))
    for kind, hint in _HINTS:
        if isinstance(err, kind) and hint not in message:
            message = f"{message} {hint}"
            break
    return CliError(message, exit_code_for(err))


def from_usage_error(err: click.UsageError) -> CliError:
    """click's parse errors, made one line with a pointer to the command's help."""
    message = one_line(err.format_message()).rstrip(".")
    ctx = err.ctx
    where = f" Run '{ctx.command_path} --help' for its options and examples." if ctx is not None else ""
    return CliError(f"{message}.{where}", EXIT_USAGE)


class DurableGroup(click.Group):
    """A click group whose subcommands fail with one line and a mapped exit code.

    The translation happens in ``invoke`` (not ``main``), so it applies both
    when the group runs on its own and when it is nested in ``funcpy``.
    """

    def invoke(self, ctx: click.Context):
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a closed pipe must fail here, not in the interpreter's exit flush
            return result
        except DurableError as err:
            raise from_durable_error(err) from None
        except click.UsageError as err:
            raise from_usage_error(err) from None
        except BrokenPipeError:
            # The reader went away (`get-instances --all | head`): stop quietly, as Unix tools do. Point stdout
            # at /dev/null so the interpreter's final flush does not fail a second time.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)
