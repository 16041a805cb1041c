"""What an exported artifact records about where it came from and what it needs to run.

The target's plugin package and version, the runtime's package and version,
the hardware, and the standalone loader copied in as ``loader.py``; and, for
``hwnas verify`` on another machine, which package to install when the target is unknown.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas import registry
from hwnas.errors import ConfigError, UnknownTargetError
from hwnas.measurement.host import package_version
from hwnas.measurement.standalone import loader_module, loader_source

if TYPE_CHECKING:
    from hwnas.measurement.artifact import Artifact
    from hwnas.measurement.target import Target

#: The standalone loader's source, copied next to ``run.py``.
LOADER_FILE = "loader.py"


def copy_loader(artifact: Artifact, out: Path) -> str:
    """Copy the artifact's standalone loader module into ``out`` as ``loader.py``; returns that name.

    An artifact whose loader is not registered cannot run without hwnas, so it
    is refused here with what to do, rather than shipped with a ``run.py`` that fails.
    """
    module = artifact.loader_module or _registered_module(artifact)
    shutil.copyfile(loader_source(module), out / LOADER_FILE)
    return LOADER_FILE


def _registered_module(artifact: Artifact) -> str:
    try:
        return loader_module(artifact.loader)
    except ConfigError as exc:
        raise ConfigError(
            f"target {artifact.target} cannot be exported: its artifacts' loader "
            f"{artifact.loader!r} has no standalone loader, so run.py could not run them",
            hint=exc.hint,
        ) from None


def plugin_entry(target: Target) -> dict[str, Any]:
    """Which plugin registered the target's kind: its module, distribution and version."""
    found = registry.origin("target", target.kind)
    if found is None:  # a target object made by hand, not through the registry
        return {"module": type(target).__module__, "package": None, "version": None}
    return {
        "module": found.plugin,
        "package": found.package,
        "version": found.version,
        "builtin": found.builtin,
    }


def runtime_entry(
    target: Target, artifact: Artifact, entry: str, loader_file: str
) -> dict[str, Any]:
    """How ``run.py`` runs the artifact: loader name and file, entry file, runtime package and version, hardware."""
    fingerprint = artifact.fingerprint
    package = target.runtime_package or target.runtime or str(fingerprint.get("runtime", ""))
    version = package_version(package) if package else None
    return {
        "loader": artifact.loader,
        "module": loader_file,
        "entry": entry,
        "package": package or None,
        "version": version or fingerprint.get("version"),
        "device": target.hardware(),
    }


def resolve_manifest_target(manifest: Mapping[str, Any]) -> Target:
    """The target an artifact was exported for; if its kind is unknown here, name the plugin package to install."""
    from hwnas.measurement.resolve import resolve_target

    spec = manifest["target"]["spec"]
    try:
        return resolve_target(spec)
    except UnknownTargetError as exc:
        plugin = manifest["target"].get("plugin") or {}
        package, version = plugin.get("package"), plugin.get("version")
        if not package or plugin.get("builtin"):
            raise
        pin = f"=={version}" if version and version != "?" else ""
        raise UnknownTargetError(
            f"this artifact's target {spec!r} comes from the plugin package {package}"
            f"{' ' + version if version else ''}, which is not installed here",
            hint=f"pip install '{package}{pin}' (or verify only the files: hwnas verify --files-only)",
        ) from exc
