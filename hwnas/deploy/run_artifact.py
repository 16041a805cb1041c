#!/usr/bin/env python3
"""Run and time an hwnas artifact with only numpy and its runtime (onnxruntime, TVM, OpenVINO, ...).

Copied into every exported artifact as ``run.py``, next to ``loader.py`` (the
target's standalone loader); neither imports hwnas, nor torch unless torch is
the runtime. ``python run.py`` checks the outputs against ``reference.npz`` and
prints latency statistics; ``--json`` prints them as JSON; exit 1 on mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def load_manifest() -> dict:
    return json.loads((HERE / "manifest.json").read_text())


def check_files(manifest: dict, root: Path = HERE) -> list[str]:
    """What is wrong with the files against the manifest, by name: missing, changed, stray or unsafe.

    Every file but manifest.json must be listed with its size and sha256;
    listed paths must stay inside the artifact (no absolute paths, no ``..``,
    no symbolic links), and the model, the reference and run.py must be listed.
    """
    entries = manifest.get("files")
    if not isinstance(entries, list) or not entries:
        return ["manifest.json lists no files: an artifact without its file list cannot be checked"]
    problems = []
    listed = set()
    base = root.resolve()
    for entry in entries:
        name = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(f"manifest.json has a file entry without a path: {entry!r}")
            continue
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or name.startswith("~"):
            problems.append(f"{name}: path leaves the artifact directory (refused)")
            continue
        path = root / relative
        if path.is_symlink() or not str(path.resolve()).startswith(str(base) + os.sep):
            problems.append(f"{name}: is a link or leaves the artifact directory (refused)")
            continue
        listed.add(relative.as_posix())
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        size = path.stat().st_size
        if size != entry.get("size"):
            problems.append(
                f"{name}: size {size} bytes, expected {entry.get('size')} (truncated or changed)"
            )
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry.get("sha256"):
            problems.append(f"{name}: sha256 differs from the manifest (file was modified)")
    required = {
        "runtime entry": (manifest.get("runtime") or {}).get("entry"),
        "reference": manifest.get("reference"),
        "runner": "run.py",
    }
    for what, name in required.items():
        if not isinstance(name, str) or Path(name).as_posix() not in listed:
            problems.append(f"the {what} ({name!r}) is not among the listed files")
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_dir() or name == "manifest.json" or "__pycache__" in path.parts:
            continue
        if name not in listed:
            problems.append(f"{name}: stray file, not in the manifest")
    return problems


def import_loader(path: Path):
    """The standalone loader module at ``path`` (the artifact's ``loader.py``)."""
    spec = importlib.util.spec_from_file_location("hwnas_artifact_loader", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"run.py: cannot read the loader {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def open_model(manifest: dict, threads: int | None, root: Path = HERE):
    """Load the compiled model with the artifact's loader; a missing runtime names the package to install."""
    runtime = manifest["runtime"]
    details = dict(manifest["target"].get("compile_details", {}))
    try:
        return import_loader(root / runtime["module"]).load(
            root / runtime["entry"], details, threads
        )
    except ImportError as exc:
        package, version = runtime.get("package"), runtime.get("version")
        pin = f"=={version}" if version else ""
        raise SystemExit(
            f"run.py: the {runtime['loader']!r} loader cannot import its runtime ({exc}); "
            f"this artifact was exported with {package} {version or ''}: pip install '{package}{pin}'"
        ) from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed runs (default 50)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=None, help="runtime threads (default: runtime's)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    manifest = load_manifest()
    problems = check_files(manifest)
    if problems:
        print(
            "artifact files do not match manifest.json:\n  " + "\n  ".join(problems),
            file=sys.stderr,
        )
        return 1
    reference = np.load(HERE / manifest["reference"])
    inputs = [reference[f"input{i}"] for i in range(len(manifest["inputs"]))]
    expected = [reference[f"output{i}"] for i in range(len(manifest["outputs"]))]

    model = open_model(manifest, args.threads)
    model.set_inputs(inputs)
    model.run()
    outputs = model.outputs()
    max_error = max(float(np.max(np.abs(o - e))) for o, e in zip(outputs, expected))
    tolerance = manifest["verification"]
    matches = all(
        np.allclose(o, e, rtol=tolerance["rtol"], atol=tolerance["atol"])
        for o, e in zip(outputs, expected)
    )
    for _ in range(args.warmup):
        model.run()
    samples = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        model.run()
        samples.append((time.perf_counter() - start) * 1e3)
    result = {
        "subnet": manifest["subnet"]["key"],
        "target": manifest["target"]["spec"],
        "outputs_match": matches,
        "max_abs_error": max_error,
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "repeats": args.repeats,
        "exported_median_ms": manifest.get("latency", {}).get("median_ms"),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{'ok' if matches else 'MISMATCH'}: max abs error {max_error:.3g} vs reference")
        print(
            f"latency: median {result['median_ms']:.4f} ms over {args.repeats} runs "
            f"(min {result['min_ms']:.4f}, max {result['max_ms']:.4f}); "
            f"measured at export: {result['exported_median_ms']}"
        )
    return 0 if matches else 1


if __name__ == "__main__":
    sys.exit(main())
