"""The ``tvm`` target: TVM Relax compiled for this CPU (``tvm:llvm``) or an NVIDIA GPU (``tvm:cuda``).

Untuned by default (batch norm folded); ``?trials=N`` tunes with MetaSchedule
against a database shared by every model compiled for the same target.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas import (
    Artifact,
    Availability,
    Target,
    cpu_fingerprint,
    cuda_compute_capability,
    gpu_fingerprint,
    has_nvidia_gpu,
    hookimpl,
    module_available,
    package_version,
    stable_hash,
)
from hwnas_targets.tvm_compile import (
    LIBRARY,
    LOADER,
    Tuning,
    build,
    cuda_arch,
    host_cpu,
    library_artifact,
)

if TYPE_CHECKING:
    from hwnas import GraphIR

DEVICES = ("llvm", "cuda")
#: Bumped when the compile pipeline changes, so cached results of the old one are not reused.
PIPELINE_VERSION = 1


def tuning_root() -> Path:
    from hwnas import default_cache_dir

    return default_cache_dir() / "tvm-tuning"


class TvmTarget(Target):
    kind = "tvm"
    runtime = "tvm"
    runtime_package = "apache-tvm"
    description = "TVM Relax via tvm.compile for this CPU (llvm) or an NVIDIA GPU (cuda); MetaSchedule with ?trials=N"
    options_help = {
        "threads": "runtime threads, and MetaSchedule's num-cores (default: the protocol's, else every usable core)",
        "mcpu": "LLVM CPU to compile for (default: this machine's, detected)",
        "trials": "MetaSchedule trials per tuning task (default 0: untuned)",
        "db": "tuning database directory (default: ~/.cache/hwnas/tvm-tuning/<target fingerprint>)",
    }
    # int8: Relax's ONNX importer reads the QDQ model and lowers it to float ops (the
    # quantised model's exact arithmetic, no int8 kernels: no int8 speed-up)
    precisions = ("fp32", "int8")

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.device = self.device_from_spec(DEVICES, "llvm", what="tvm device")
        self.trials = self.int_option("trials", 0) or 0

    @classmethod
    def listed_specs(cls) -> tuple[str, ...]:
        return tuple(f"tvm:{d}" for d in DEVICES)

    def available(self) -> Availability:
        if not module_available("tvm"):
            return Availability.no("TVM is not installed (pip install apache-tvm)")
        if self.device == "cuda":
            if not has_nvidia_gpu():
                return Availability.no("no NVIDIA GPU/driver on this machine")
            if not _tvm_has_cuda_runtime():
                return Availability.no("this TVM build has no CUDA runtime")
            if not (module_available("cuda.bindings") or shutil.which("nvcc")):
                return Availability.no(
                    "TVM needs NVRTC (pip install cuda-python) or nvcc to compile CUDA"
                )
        return Availability.yes()

    def fingerprint(self) -> dict[str, Any]:
        fp: dict[str, Any] = {
            "runtime": "tvm",
            "version": package_version("apache-tvm"),
            "device": self.device,
            "mcpu": self.spec.option("mcpu") or "host",
            "pipeline": PIPELINE_VERSION,
            "trials": self.trials,
        }
        if self.device == "cuda":
            fp.update(gpu_fingerprint())
        fp.update(cpu_fingerprint(self.pinned_threads()))
        return fp

    def tuning_dir(self) -> Path:
        """Where tuning records live: shared by every model and trial budget on this target."""
        if self.spec.option("db"):
            return Path(str(self.spec.option("db"))).expanduser()
        fp = {k: v for k, v in self.fingerprint().items() if k != "trials"}
        return tuning_root() / f"{self.device}-{stable_hash(fp)}"

    def tvm_target(self) -> dict[str, Any]:
        """The TVM target dict this spec compiles for (detects the host CPU; imports TVM)."""
        llvm = {
            "kind": "llvm",
            "mcpu": self.spec.option("mcpu") or host_cpu(),
            "num-cores": self.threads(),
        }
        if self.device == "llvm":
            return llvm
        arch = cuda_arch(cuda_compute_capability())
        cuda: dict[str, Any] = {"kind": "cuda", "host": llvm}
        if arch:
            cuda["arch"] = arch
        return cuda

    def compile(self, ir: GraphIR, workdir: Path) -> Artifact:
        if self.device == "cuda" and not module_available("cuda.bindings"):
            os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
        tuning = None
        if self.trials:
            tuning = Tuning(trials=self.trials, work_dir=self.tuning_dir())
        details = build(ir, self.tvm_target(), workdir / LIBRARY, tuning=tuning)
        return library_artifact(self, ir, workdir, details)


def _tvm_has_cuda_runtime() -> bool:
    import importlib.util

    spec = importlib.util.find_spec("tvm")
    if spec is None or not spec.submodule_search_locations:
        return False
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    return any(lib.glob("libtvm_runtime_cuda*"))


@hookimpl
def hwnas_register_targets(register: Any) -> None:
    register(TvmTarget)


@hookimpl
def hwnas_register_loaders(register: Any) -> None:
    register(LOADER, "hwnas_targets.tvm_relax_vm")
