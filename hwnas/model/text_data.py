"""Text data for fine-tuning and scoring text supernets: generated sentences, a ``.txt`` file, or labelled ``.tsv``.

Texts are tokenised by the caller's tokenizer (the pretrained model's own) and
split 70/10/20 like image data; image data lives in :mod:`hwnas.model.datasets`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas.errors import ConfigError
from hwnas.model.datasets import SPLIT_FRACTIONS, ImageSet, ThreeSplits

if TYPE_CHECKING:
    import torch

GENERATED = "generated"
#: Sentences ``--data generated`` makes (seeded): enough for a 400-sentence held-out split;
#: ``generated:N`` makes N.
GENERATED_COUNT = 2000
_TEXT_HINT = (
    "pass --data generated[:COUNT], a .txt file with one text per line, "
    "or a .tsv file with 'text<TAB>label' per line"
)

Tokenizer = Callable[[Sequence[str]], "torch.Tensor"]


@dataclass(frozen=True, eq=False)
class TextData(ThreeSplits):
    """Token ids split three ways; ``y`` holds class indices (labelled) or zeros (``num_classes == 0``)."""

    name: str
    num_classes: int
    train: ImageSet
    calibration: ImageSet
    validation: ImageSet
    description: dict[str, Any] = field(default_factory=dict)
    #: The pretrained model's outputs on ``validation`` (what fidelity compares against), if known.
    teacher: torch.Tensor | None = None

    @property
    def labelled(self) -> bool:
        return self.num_classes > 0

    def summary(self) -> str:
        kind = f"{self.num_classes} classes" if self.labelled else "unlabelled"
        tokens = int(self.train.x.shape[1])
        return (
            f"{self.name}: {kind}, {tokens} tokens, {len(self.train)} train / "
            f"{len(self.calibration)} calibration / {len(self.validation)} validation"
        )


def load_text_data(source: str | Path, tokenizer: Tokenizer, *, seed: int = 0) -> TextData:
    """Texts from ``source`` tokenised and split by ``seed`` (stratified when labelled)."""
    text = str(source)
    kind, _, count = text.partition(":")
    if kind == GENERATED:
        if count and not (count.isdigit() and int(count) >= 10):
            raise ConfigError(f"--data {text}: the count after ':' must be a number of at least 10")
        number = int(count) if count else GENERATED_COUNT
        texts, labels, classes, origin = generated_sentences(number, seed), None, [], text
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"text data {path} does not exist", hint=_TEXT_HINT)
        texts, labels, classes = _read_texts(path)
        origin = str(path.resolve())
    if len(texts) < 10:
        raise ConfigError(f"text data {text}: only {len(texts)} texts; need at least 10")
    ids = tokenizer(texts)
    y = np.asarray(labels if labels is not None else [0] * len(texts), dtype=np.int64)
    parts = _split_indices(y if labels is not None else None, len(texts), seed)
    import torch

    def subset(name: str) -> ImageSet:
        index = torch.from_numpy(np.sort(parts[name]))
        return ImageSet(ids[index], torch.from_numpy(y)[index])

    description = {
        "kind": "text",
        "source": text if kind == GENERATED else origin,
        "seed": seed,
        "classes": classes,
        "examples": len(texts),
        "splits": {k: len(v) for k, v in parts.items()},
        "tokens": int(ids.shape[1]),
    }
    return TextData(
        name=text if kind == GENERATED else Path(text).name,
        num_classes=len(classes),
        train=subset("train"),
        calibration=subset("calibration"),
        validation=subset("validation"),
        description=description,
    )


def _read_texts(path: Path) -> tuple[list[str], list[int] | None, list[str]]:
    lines = [line.rstrip("\n") for line in path.read_text(errors="replace").splitlines()]
    lines = [line for line in lines if line.strip()]
    if path.suffix.lower() not in (".tsv", ".txt"):
        raise ConfigError(
            f"text data {path}: unsupported file type {path.suffix!r}", hint=_TEXT_HINT
        )
    if path.suffix.lower() == ".txt":
        return lines, None, []
    texts, names = [], []
    for number, line in enumerate(lines, 1):
        text, sep, label = line.rpartition("\t")
        if not sep or not text.strip() or not label.strip():
            raise ConfigError(
                f"{path}:{number}: expected 'text<TAB>label'", hint="one labelled text per line"
            )
        texts.append(text.strip())
        names.append(label.strip())
    classes = sorted(set(names))
    if len(classes) < 2:
        raise ConfigError(f"{path}: found {len(classes)} label(s); need at least 2")
    return texts, [classes.index(n) for n in names], classes


def _split_indices(labels: np.ndarray | None, count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = (
        [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
        if labels is not None
        else [rng.permutation(count)]
    )
    parts: dict[str, list[int]] = {name: [] for name in SPLIT_FRACTIONS}
    for members in groups:
        n_val = max(1, int(round(len(members) * SPLIT_FRACTIONS["validation"])))
        n_cal = max(1, int(round(len(members) * SPLIT_FRACTIONS["calibration"])))
        parts["validation"].extend(members[:n_val])
        parts["calibration"].extend(members[n_val : n_val + n_cal])
        parts["train"].extend(members[n_val + n_cal :])
    empty = [name for name, index in parts.items() if not index]
    if empty:
        raise ConfigError(f"text data: split(s) {', '.join(empty)} came out empty")
    return {name: np.asarray(index, dtype=np.int64) for name, index in parts.items()}


# -- generated sentences ---------------------------------------------------------------
# A small grammar gives varied, plain English without shipping a corpus; a
# sentence encoder maps its topics (people, places, weather, work, food) apart.

_PEOPLE = (
    "the teacher", "my neighbour", "a young doctor", "the old fisherman", "our manager",
    "the engineer", "a tired student", "the baker", "my sister", "the pilot", "a famous singer",
    "the farmer", "the children", "a quiet librarian", "the new nurse", "the mechanic",
)  # fmt: skip
_ACTIONS = (
    "repaired the broken bicycle", "cooked a large pot of soup", "painted the kitchen wall",
    "read a long novel", "planted tomatoes in the garden", "wrote a letter to the council",
    "sold fresh bread at the market", "fixed the leaking roof", "played the piano for guests",
    "cleaned the dusty attic", "answered every question", "lost the keys to the car",
    "found an old photograph", "ordered pizza for everyone", "built a wooden table",
    "fed the hungry cats", "missed the morning train", "won the chess tournament",
    "studied for the final exam", "called the bank about a loan",
)  # fmt: skip
_WHEN = (
    "yesterday", "on Monday morning", "after lunch", "late at night", "during the storm",
    "before the holidays", "last summer", "this afternoon", "in the spring", "at dawn",
)  # fmt: skip
_PLACES = (
    "in the village", "near the river", "at the hospital", "in a small flat", "on the farm",
    "at the airport", "in the city centre", "by the sea", "at school", "in the mountains",
)  # fmt: skip
_OPINIONS = (
    "was surprisingly easy", "took far longer than planned", "made everyone laugh",
    "cost more than expected", "was a complete disaster", "went better than anyone hoped",
    "felt strange and exciting", "needed a second attempt",
)  # fmt: skip
_TOPICS = (
    "the weather", "the football match", "the price of coffee", "the new library",
    "the election", "the traffic", "the concert", "the stock market", "the recipe",
    "the software update", "the garden", "the vacation",
)  # fmt: skip
_FEELINGS = (
    "happy about", "worried about", "curious about", "angry about", "bored by",
    "delighted with", "confused by", "proud of",
)  # fmt: skip


def generated_sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct English sentences from a small seeded grammar."""
    rng = np.random.default_rng(seed)

    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    templates: tuple[Callable[[], str], ...] = (
        lambda: f"{pick(_PEOPLE).capitalize()} {pick(_ACTIONS)} {pick(_WHEN)}.",
        lambda: f"{pick(_PEOPLE).capitalize()} {pick(_ACTIONS)} {pick(_PLACES)}.",
        lambda: f"Why was {pick(_PEOPLE)} {pick(_FEELINGS)} {pick(_TOPICS)}?",
        lambda: f"{pick(_PEOPLE).capitalize()} said that {pick(_TOPICS)} {pick(_OPINIONS)}.",
        lambda: (
            f"{pick(_WHEN).capitalize()}, {pick(_PEOPLE)} {pick(_ACTIONS)}, which {pick(_OPINIONS)}."
        ),
        lambda: f"Everyone {pick(_PLACES)} is {pick(_FEELINGS)} {pick(_TOPICS)}.",
    )
    seen: dict[str, None] = {}
    attempts = 0
    while len(seen) < count:
        attempts += 1
        if attempts > count * 50:
            raise ConfigError(f"the sentence grammar cannot make {count} distinct sentences")
        seen.setdefault(templates[int(rng.integers(len(templates)))](), None)
    return list(seen)
