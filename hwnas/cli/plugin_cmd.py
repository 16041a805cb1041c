"""``hwnas plugin new``: a plugin package (target, strategy, predictor or supernet) written from a template.

The templates are the ``*.tmpl`` files under ``plugin_templates/`` (``common/``
for every kind, one folder per kind); what they produce installs and passes the kit.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import click

from hwnas.errors import ConfigError


@dataclass(frozen=True)
class PluginKind:
    """What a generated package of one kind says of itself and needs, for its pyproject.toml."""

    description: str
    dependencies: tuple[str, ...]


KINDS: dict[str, PluginKind] = {
    "target": PluginKind("An hwnas target: onnxruntime on the CPU", ("hwnas", "onnxruntime")),
    "strategy": PluginKind(
        "An hwnas search strategy: neighbours of the best subnets", ("hwnas", "numpy")
    ),
    "predictor": PluginKind("An hwnas predictor: linear least squares", ("hwnas", "numpy")),
    "supernet": PluginKind(
        "An hwnas supernet: an MLP of elastic depth and width", ("hwnas", "torch")
    ),
}
#: Lowercase words joined by '-': a valid target kind, entry-point name and distribution name.
NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def check_name(name: str) -> None:
    """Refuse a NAME that cannot be a plugin's name, module and package all at once."""
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"plugin name {name!r} is not lowercase words joined by '-'",
            hint="use lowercase letters and digits, starting with a letter, e.g. my-npu",
        )


def render_plugin(kind: str, name: str) -> dict[str, str]:
    """The files of a new ``kind`` plugin called ``name``: path in the package -> text."""
    check_name(name)
    if kind not in KINDS:
        raise ConfigError(f"no plugin kind {kind!r}", hint=f"kinds: {', '.join(KINDS)}")
    module = "hwnas_" + name.replace("-", "_")
    values = {
        "name": name,
        "package": f"hwnas-{name}",
        "module": module,
        "Class": "".join(word.capitalize() for word in name.split("-")),
        "description": KINDS[kind].description,
        "dependencies": ", ".join(f'"{d}"' for d in KINDS[kind].dependencies),
    }
    templates = resources.files("hwnas.cli") / "plugin_templates"
    files = {}
    for template in [*(templates / "common").iterdir(), *(templates / kind).iterdir()]:
        if template.name.endswith(".tmpl"):
            path = _place(template.name.removesuffix(".tmpl"), module)
            files[path] = string.Template(template.read_text()).substitute(values)
    return dict(sorted(files.items()))


def _place(filename: str, module: str) -> str:
    """Tests go to ``tests/``, other Python files into the module, the rest to the top."""
    if filename.startswith("test_"):
        return f"tests/{filename}"
    return f"{module}/{filename}" if filename.endswith(".py") else filename


def write_plugin(kind: str, name: str, out: Path) -> list[Path]:
    """Write the package into ``out`` (absent or empty, so nothing is overwritten); the paths written."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"{out} exists and is not an empty folder",
            hint="give --out a new folder; nothing was written",
        )
    written = []
    for relative, text in render_plugin(kind, name).items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def check_name_is_free(kind: str, name: str) -> None:
    """Refuse a name an installed plugin or a registered ``kind`` already has: one of the two would lose."""
    from hwnas.registry import plugin_host

    host = plugin_host()
    if name in host.plugins:
        raise ConfigError(
            f"a plugin named {name!r} is installed already (package {host.plugins[name].package})",
            hint="choose another NAME: hwnas loads one plugin per entry-point name",
        )
    registered = host.registrations(kind).get(name)
    if registered is not None:
        raise ConfigError(
            f"{kind} {name!r} is registered already, by plugin {registered.plugin!r}",
            hint="choose another NAME (`hwnas plugins` lists what is taken)",
        )


@click.group()
def plugin() -> None:
    """Write new plugins (`hwnas plugins` lists the installed ones)."""


@plugin.command()
@click.option(
    "--kind", required=True, type=click.Choice(list(KINDS)), help="What the plugin provides."
)
@click.argument("name")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write (default: ./hwnas-NAME); must be new or empty.",
)
def new(kind: str, name: str, out: Path | None) -> None:
    """Write the plugin package hwnas-NAME providing the KIND called NAME.

    It holds a working minimal implementation, a pyproject.toml with its
    entry point, tests running hwnas's conformance kit, and a README saying
    what to edit. Example: hwnas plugin new --kind target my-npu
    """
    check_name(name)
    check_name_is_free(kind, name)
    out = out or Path(f"hwnas-{name}")
    written = write_plugin(kind, name, out)
    click.echo(f"wrote the {kind} plugin hwnas-{name} into {out}/:")
    for path in written:
        click.echo(f"  {path.relative_to(out)}")
    click.echo(f"next: pip install -e {out} && pytest {out}   ({out}/README.md says what to edit)")
