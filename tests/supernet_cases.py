"""The built-in supernets and presets that property tests run over (tiny ones; full-size for slow tests)."""

from __future__ import annotations

from hwnas_plugins.supernets.mobilenet_v3 import OFAMobileNetV3
from hwnas_plugins.supernets.resnet import ElasticResNetSupernet
from hwnas_plugins.supernets.transformer import ElasticTransformer

TINY = [
    (OFAMobileNetV3, "tiny"),
    (ElasticResNetSupernet, "tiny"),
    (ElasticTransformer, "tiny"),
    (ElasticTransformer, "tiny-text"),
]
FULL = [
    (OFAMobileNetV3, "full"),
    (ElasticResNetSupernet, "full"),
    (ElasticTransformer, "full"),
    (ElasticTransformer, "text"),
]


def ids(cases: list[tuple[type, str]]) -> list[str]:
    return [f"{cls.name}-{preset}" for cls, preset in cases]
