"""Pretrained models the tests wrap: a user's digits CNN (source file + trained weights) and a tiny BERT folder.

Built in the test session (a few seconds), never downloaded: the CNN is trained on
scikit-learn's digits; the BERT is randomly initialised by ``transformers`` and saved as a model folder.
"""

from __future__ import annotations

import json
from pathlib import Path

USER_CNN = '''
import torch
from torch import nn
import torch.nn.functional as F


class DigitsCNN(nn.Module):
    """A user's own static CNN: convs, a depthwise conv, pooling, an MLP head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 24, 3, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU(),
            nn.Conv2d(24, 24, 3, padding=1, groups=24), nn.BatchNorm2d(24), nn.ReLU6(),
            nn.Conv2d(24, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc1 = nn.Linear(32 * 2 * 2, 48)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(48, 10)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.body = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.stem(x)
        return y + self.body(y)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.rnn = nn.LSTM(4, 4)

    def forward(self, x):
        return self.rnn(self.conv(x))
'''


def write_user_cnn(folder: Path, *, epochs: int = 3) -> tuple[Path, Path]:
    """The CNN's source file and its weights after ``epochs`` of training on digits (~97% accurate)."""
    import importlib.util

    import torch
    import torch.nn.functional as F

    from hwnas.model.datasets import load_data

    source = folder / "user_cnn.py"
    source.write_text(USER_CNN)
    spec = importlib.util.spec_from_file_location("user_cnn_for_tests", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.DigitsCNN()
    data = load_data("digits")
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    for epoch in range(epochs):
        model.train()
        for x, y in data.train.batches(64, shuffle=True, seed=epoch):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    weights = folder / "cnn.pt"
    torch.save(model.eval().state_dict(), weights)
    return source, weights


def write_tiny_bert(folder: Path, **config: object) -> Path:
    """A randomly initialised 2-layer BERT folder (config.json, model.safetensors, tokenizer.json)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel

    from hwnas.model.text_data import generated_sentences

    words = sorted({w.strip(".,?!").lower() for s in generated_sentences(400) for w in s.split()})
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    settings = {
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    } | config
    torch.manual_seed(0)
    BertModel(BertConfig(**settings)).save_pretrained(folder, safe_serialization=True)
    if "model_type" in config:  # save_pretrained writes the class's own model type
        saved = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(
            json.dumps(saved | {"model_type": config["model_type"]})
        )
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder
