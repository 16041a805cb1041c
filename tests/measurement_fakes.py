"""Fake targets for measurement tests: they replay the reference outputs, or crash, hang, lie or lose their device.

Module-level classes, so the measurement worker process can import them by name.
The spec's device picks the behaviour: ``fake-replay:ok``, ``:abort``,
``:segv``, ``:oom``, ``:hang``, ``:perturb``, ``:noisy``, ``:constant`` (ignores its input),
``:compile-segv``, ``:compile-hang`` (the compiler misbehaves); ``fake-remote:lost`` loses
its "board" on the first attempt (counted in a file next to the artifact).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas import hookimpl
from hwnas.measurement.artifact import Artifact
from hwnas.measurement.target import Availability, Runner, Target
from hwnas.measurement.verification import fixed_inputs, other_inputs, reference_outputs

OUTPUTS = "outputs.npz"


class ReplayRunner(Runner):
    """Plays back the reference outputs recorded at compile time for whichever check inputs are set."""

    def __init__(self, artifact: Artifact, behaviour: str) -> None:
        data = np.load(artifact.path(OUTPUTS))
        self.samples = [
            (
                [data[k] for k in sorted(data.files) if k.startswith(f"s{n}.in")],
                [data[k] for k in sorted(data.files) if k.startswith(f"s{n}.out")],
            )
            for n in range(int(data["samples"]))
        ]
        self.expected = self.samples[0][1]
        self.offset = 0.0  # added to every output
        self.behaviour = behaviour
        self.work = np.ones((32, 32), dtype=np.float32)
        self.calls = 0

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        self.inputs = list(inputs)
        for sample, outputs in self.samples:
            if all(np.array_equal(a, b) for a, b in zip(sample, self.inputs, strict=True)):
                self.expected = outputs
                return
        raise ValueError("inputs the fake target did not record at compile time")

    def run(self) -> None:
        self.calls += 1
        if self.behaviour == "abort":
            os.abort()
        if self.behaviour == "segv":
            ctypes.string_at(0)
        if self.behaviour == "oom":  # what the kernel's OOM killer does
            os.kill(os.getpid(), signal.SIGKILL)
        if self.behaviour == "hang":
            time.sleep(3600)
        if self.behaviour == "noisy":
            time.sleep(0.001 if self.calls % 2 else 0.004)
        self.work @ self.work

    def outputs(self) -> list[np.ndarray]:
        if self.behaviour == "perturb":
            return [o + 0.5 for o in self.expected]
        if self.behaviour == "constant":  # ignores its input: always the first sample's outputs
            return [o + self.offset for o in self.samples[0][1]]
        return [o + self.offset for o in self.expected]

    def device_info(self) -> dict[str, Any]:
        return {"pid": os.getpid()}


class ReplayTarget(Target):
    kind = "fake-replay"
    description = "replays the reference outputs; misbehaves as its device says"
    options_help = {"threads": "ignored"}

    def available(self) -> Availability:
        return Availability.yes()

    def fingerprint(self) -> dict[str, Any]:
        return {"runtime": "replay-1", "behaviour": self.spec.device}

    def compile(self, ir: Any, workdir: Path) -> Artifact:
        if self.spec.device == "compile-segv":
            ctypes.string_at(0)
        if self.spec.device == "compile-hang":
            time.sleep(3600)
        first = fixed_inputs(ir)
        arrays: dict[str, np.ndarray] = {"samples": np.array(2)}
        for n, inputs in enumerate((first, other_inputs(ir, first))):
            arrays.update({f"s{n}.in{i}": x for i, x in enumerate(inputs)})
            outputs = reference_outputs(ir, inputs)
            arrays.update({f"s{n}.out{i}": o for i, o in enumerate(outputs)})
        np.savez(workdir / OUTPUTS, **arrays)
        return Artifact.create(
            target=self.name,
            kind=self.kind,
            root=workdir,
            loader="replay",
            entry=OUTPUTS,
            files=[OUTPUTS],
            inputs=ir.input_specs,
            outputs=ir.output_specs,
            ir_key=ir.key,
            fingerprint=self.fingerprint(),
        )

    def load(self, artifact: Artifact, threads: int) -> Runner:
        return ReplayRunner(artifact, self.spec.device or "ok")


class FlakyRemoteTarget(ReplayTarget):
    """A "remote" target with two boards; ``lost`` drops the first session, ``dead`` every one."""

    kind = "fake-remote"
    remote = True

    def parallel_slots(self) -> int:
        return 2

    def is_device_lost(self, exc: BaseException) -> bool:
        return isinstance(exc, ConnectionError)

    def load(self, artifact: Artifact, threads: int) -> Runner:
        counter = Path(artifact.root) / "sessions"
        sessions = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(sessions + 1))
        if self.spec.device == "dead" or (self.spec.device == "lost" and sessions == 0):
            raise ConnectionError("board closed the RPC connection")
        return ReplayRunner(artifact, "ok")


class CoarseTarget(ReplayTarget):
    """A reduced-precision stand-in: its outputs are off by 0.01, within its declared tolerance."""

    kind = "fake-coarse"
    tolerance = (0.0, 0.05)

    def load(self, artifact: Artifact, threads: int) -> Runner:
        runner = ReplayRunner(artifact, "ok")
        runner.offset = 0.01
        return runner


class HoldsAHandleTarget(ReplayTarget):
    """Keeps a runtime handle on the Target itself, which cannot be sent to the worker."""

    kind = "fake-handle"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.session = open(os.devnull)  # noqa: SIM115 - the point is an unpicklable attribute


class RegistersMeasurementFakes:
    @hookimpl
    def hwnas_register_targets(self, register: Any) -> None:
        register(ReplayTarget)
        register(FlakyRemoteTarget)
        register(CoarseTarget)
        register(HoldsAHandleTarget)
