"""The ``hwnas`` command line: a click group whose subcommands are imported only when run.

Each subcommand lives in its own module under ``hwnas/cli/``; this module
only maps names to them and turns :class:`~hwnas.errors.HwnasError` into exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# command name -> ("module:function", one-line help shown by `hwnas --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "space": ("hwnas.cli.space_cmd:space", "Show a supernet's search space: genes, choices, size."),
    "subnet": (
        "hwnas.cli.subnet_cmd:subnet",
        "Sample a subnet (random, smallest, largest) as canonical JSON.",
    ),
    "ir": ("hwnas.cli.ir_cmd:ir", "Show a subnet's graph IR: ops, MACs, params, kernel groups."),
    "plugins": ("hwnas.cli.plugins_cmd:plugins", "List installed plugins and what they provide."),
    "plugin": (
        "hwnas.cli.plugin_cmd:plugin",
        "Write a new plugin package (target, strategy, predictor, supernet).",
    ),
    "targets": (
        "hwnas.cli.targets_cmd:targets",
        "List hardware targets: available here or why not.",
    ),
    "bench": (
        "hwnas.cli.bench_cmd:bench",
        "Measure one model (subnet, ONNX or torch) on several targets.",
    ),
    "train": (
        "hwnas.cli.train_cmd:train",
        "Train a weight-sharing supernet (sandwich rule, in-place distillation).",
    ),
    "search": (
        "hwnas.cli.search_cmd:search",
        "Search for Pareto-optimal subnets under hardware constraints.",
    ),
    "export": (
        "hwnas.cli.export_cmd:export",
        "Compile a chosen subnet into a deployable artifact directory.",
    ),
    "verify": ("hwnas.cli.verify_cmd:verify", "Check an exported artifact's files and outputs."),
    "report": (
        "hwnas.cli.report_cmd:report",
        "Write an HTML report of search runs and bench results.",
    ),
    "lut": ("hwnas.cli.lut_cmd:lut", "Build or show a per-kernel latency table for a target."),
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs (keeps --help fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return super().get_command(ctx, name)
        module, _, attr = COMMANDS[name][0].partition(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help lines come from COMMANDS, so listing commands imports none of them.
        rows = [
            (
                name,
                COMMANDS[name][1] if name in COMMANDS else self.commands[name].get_short_help_str(),
            )
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hwnas", prog_name="hwnas")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """hwnas: find, measure and compile hardware-specialised sub-networks of a supernet."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> Any:
    """Entry point: user-facing errors print one or two lines and exit 2 (traceback with --debug)."""
    from hwnas.errors import HwnasError

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        return cli.main(args=args, prog_name="hwnas", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except HwnasError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
