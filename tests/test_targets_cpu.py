"""The built-in CPU targets (torch, onnxruntime, TVM) compile, verify and measure real models; GPU variants behind ``gpu``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hwnas.errors import CompileError, ConfigError
from hwnas.measurement.measurer import Measurer
from hwnas.measurement.protocol import MeasurementProtocol
from hwnas.measurement.resolve import resolve_target
from hwnas.measurement.results import Measurement
from hwnas.measurement.target import TargetSpec

PROTOCOL = MeasurementProtocol(
    warmup=2, repeats=5, min_repeat_ms=2.0, max_remeasure=0, timeout_s=300.0
)
CPU_TARGETS = ["torch:cpu", "onnxruntime:cpu?threads=1", "tvm:llvm"]
LOADERS = {"torch": "torch-export", "onnxruntime": "onnxruntime-session", "tvm": "tvm-relax-vm"}


def conv_ir_with_seed(seed: int):
    """The conformance kit's conv net (conv-BN-ReLU6, depthwise conv-BN, pool, linear), seeded."""
    from hwnas.testing import conv_net

    return conv_net(seed).ir()


@pytest.fixture(scope="module")
def conv_ir():
    return conv_ir_with_seed(0)


@pytest.fixture
def measurer(builtin_plugin_host, pool, tmp_path):
    def make(spec: str, protocol: MeasurementProtocol = PROTOCOL) -> Measurer:
        return Measurer(
            spec, protocol, cache=tmp_path / "cache", artifact_dir=tmp_path / "artifacts", pool=pool
        )

    return make


def test_listing_targets_imports_no_runtime():
    code = (
        "import sys; from hwnas.cli.targets_cmd import target_rows; rows = target_rows(); "
        "import json; print(json.dumps([sorted(m for m in ('tvm', 'onnxruntime') if m in sys.modules), "
        "{r['target']: r.get('available') for r in rows}]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    imported, available = json.loads(out.strip().splitlines()[-1])
    assert imported == []
    assert available["torch:cpu"] and available["onnxruntime:cpu"] and available["tvm:llvm"]


@pytest.mark.parametrize("spec", CPU_TARGETS)
def test_cpu_target_compiles_verifies_and_measures(measurer, conv_ir, spec):
    m = measurer(spec)
    artifact = m.compile(conv_ir)
    assert artifact.loader == LOADERS[m.target.kind] and artifact.ir_key == conv_ir.key
    artifact.verify()
    result = m.measure(conv_ir)
    assert isinstance(result, Measurement)
    assert result.max_abs_error < 1e-4 and 0 < result.median_s < 0.5
    assert len(result.samples_s) == PROTOCOL.repeats
    assert result.fingerprint["runtime"] == m.target.kind.split("-")[0]
    assert result.fingerprint["version"]
    if m.target.kind == "tvm":
        assert result.timer == "tvm.time_evaluator"
        assert artifact.details["tvm_target"]["mcpu"]  # the host CPU was detected
    if spec.endswith("threads=1"):
        assert result.threads == 1 and result.fingerprint["threads"] == 1
    assert m.measure(conv_ir).cached


@pytest.mark.parametrize("spec", ["onnxruntime:cpu", "tvm:llvm"])
def test_subnets_of_a_builtin_supernet_measure(measurer, spec):
    from hwnas import registry
    from hwnas.ir import GraphIR

    net = registry.supernet_class("ofa-mbv3").configure("tiny", {})
    module = net.build()
    result = measurer(spec).measure(GraphIR.from_subnet(net, module, net.space.smallest()))
    assert result.max_abs_error < 1e-3 and result.macs > 0 and result.gflops > 0


def test_torch_target_refuses_an_onnx_model(measurer, conv_ir, tmp_path):
    from hwnas.ir import GraphIR

    onnx_ir = GraphIR.from_onnx(conv_ir.to_onnx(tmp_path / "conv.onnx"))
    with pytest.raises(CompileError, match="needs a torch model"):
        measurer("torch:cpu").measure(onnx_ir)
    result = measurer("onnxruntime:cpu").measure(onnx_ir)  # checked against unoptimised onnxruntime
    assert result.max_abs_error < 1e-4


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torch:tpu", "unknown torch device"),
        ("onnxruntime:cpu?opt=turbo", "not a level"),
        ("onnxruntime:cpu?bogus=1", "unknown option"),
        ("tvm:llvm?trials=many", "not an integer"),
        ("tvm:vulkan", "unknown tvm device"),
        ("onnxruntime:cpu?threads=1&threads=2", "sets threads more than once"),
        ("onnxruntime:cpu?threads=100000", "must be >= 1 and <= 1024"),
        ("torch:cpu?threads=0", "must be >= 1"),
    ],
)
def test_bad_specs_are_config_errors(builtin_plugin_host, spec, message):
    with pytest.raises(ConfigError, match=message):
        resolve_target(spec)


def test_fingerprints_are_cheap_and_distinguish_settings(builtin_plugin_host):
    one = resolve_target("onnxruntime:cpu?threads=1")
    two = resolve_target("onnxruntime:cpu?threads=2")
    assert one.fingerprint_hash() != two.fingerprint_hash()
    assert (
        resolve_target("tvm:llvm").fingerprint_hash()
        != resolve_target("tvm:llvm?trials=8").fingerprint_hash()
    )
    untuned = resolve_target("tvm:llvm")
    assert (
        untuned.tuning_dir() == resolve_target("tvm:llvm?trials=8").tuning_dir()
    )  # one database per target
    assert "cpu" in untuned.fingerprint() and "isa" in untuned.fingerprint()


@pytest.mark.parametrize("spec", ["torch:cuda", "onnxruntime:cuda", "tvm:cuda"])
def test_gpu_targets_say_why_not_without_a_gpu(builtin_plugin_host, spec):
    from hwnas.measurement import host

    target = resolve_target(spec)
    if host.has_nvidia_gpu():
        pytest.skip("this machine has a GPU")
    availability = target.available()
    assert not availability and "GPU" in availability.reason


@pytest.mark.gpu
@pytest.mark.parametrize("spec", ["torch:cuda", "onnxruntime:cuda", "tvm:cuda"])
def test_gpu_target_compiles_verifies_and_measures(measurer, conv_ir, spec):
    m = measurer(spec)
    result = m.measure(conv_ir)
    assert result.max_abs_error < 1e-3 and result.median_s > 0
    assert result.fingerprint["gpu"]
    if spec == "torch:cuda":
        assert result.peak_memory_bytes and result.peak_memory_bytes > 0


@pytest.mark.slow
def test_tvm_tuning_reuses_the_shared_database(measurer, conv_ir, tmp_path):
    spec = f"tvm:llvm?trials=4&db={tmp_path / 'db'}"
    first = measurer(spec).compile(conv_ir)
    report = first.details["tuning"]
    assert report["tasks"] > 0 and report["tuned"] == report["tasks"]
    # another model with the same kernels (other weights): everything comes from the database
    twin = conv_ir_with_seed(1)
    assert twin.key != conv_ir.key
    second = measurer(spec).compile(twin)
    assert second.details["tuning"]["tuned"] == 0
    assert second.details["tuning"]["reused"] == report["tasks"]
    assert second.details["tuning"]["seconds"] < report["seconds"]
    assert measurer(spec).measure(twin).max_abs_error < 1e-4


def test_spec_round_trip():
    spec = TargetSpec.parse("tvm:llvm?trials=8&mcpu=znver3")
    assert TargetSpec.parse(str(spec)) == spec and spec.option("trials") == "8"
