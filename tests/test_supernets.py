"""Built-in supernets: registration, spaces, extraction equivalence, settings, checkpoints, BN recalibration."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwnas import registry
from hwnas.errors import ConfigError, UnknownNameError
from hwnas.model.bn_calibration import batch_norm_layers, calibrate_subnet, recalibrate_batch_norm
from hwnas.model.checkpoint import load_checkpoint, write_checkpoint
from hwnas.model.supernet import Supernet
from hwnas_plugins.supernets.mobilenet_v3 import OFAMobileNetV3
from hwnas_plugins.supernets.resnet import ElasticResNetSupernet
from hwnas_plugins.supernets.transformer import ElasticTransformer

torch.set_num_threads(1)

# (supernet class, preset) pairs every property test runs over
TINY = [
    (OFAMobileNetV3, "tiny"),
    (ElasticResNetSupernet, "tiny"),
    (ElasticTransformer, "tiny"),
    (ElasticTransformer, "tiny-text"),
]
IDS = [f"{cls.name}-{preset}" for cls, preset in TINY]
PROPERTY = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


def randomise(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Move every weight away from its initial value (transforms off identity, BN stats off 0/1)."""
    generator = torch.Generator().manual_seed(seed)

    def noise(shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    with torch.no_grad():
        for name, param in module.named_parameters():
            if "transform_" in name:
                param.add_(0.2 * noise(param.shape))
            elif param.dim() == 1 and name.endswith("weight"):
                param.copy_(1 + 0.2 * noise(param.shape))
            elif param.dim() == 1 or "cls_token" in name:
                param.copy_(0.2 * noise(param.shape))
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(0.2 * noise(buffer.shape))
            elif name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))
    return module.eval()


@functools.cache
def built(cls: type[Supernet], preset: str) -> tuple[Supernet, torch.nn.Module]:
    supernet = cls(preset=preset)
    return supernet, randomise(supernet.build())


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# -- registration and spaces -------------------------------------------------------


def test_builtin_supernets_are_registered_as_plugins(plugin_host):
    classes = registry.supernet_classes()
    assert {"ofa-mbv3", "elastic-resnet", "elastic-transformer"} <= set(classes)
    for name in ("ofa-mbv3", "elastic-resnet", "elastic-transformer"):
        assert issubclass(classes[name], Supernet)
        assert classes[name].name == name
    for module in ("mobilenet_v3", "resnet", "transformer"):
        info = plugin_host.plugins[f"hwnas_plugins.supernets.{module}"]
        assert info.ok, info.error
    with pytest.raises(UnknownNameError, match="unknown supernet 'nope'"):
        registry.supernet_class("nope")


def test_listing_supernets_does_not_import_torch():
    code = (
        "import sys\n"
        "import hwnas.model.supernet, hwnas.ir, hwnas.model.bn_calibration\n"
        "from hwnas_plugins.supernets import mobilenet_v3, resnet, transformer\n"
        "for cls in (mobilenet_v3.OFAMobileNetV3, resnet.ElasticResNetSupernet, transformer.ElasticTransformer):\n"
        "    cls(preset='full').space.size()\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "TORCH False" in result.stdout


def test_full_ofa_space_is_once_for_alls():
    space = OFAMobileNetV3(preset="full").space
    per_stage = 9**2 * (1 + 9 + 9**2)  # two fixed blocks, then depth 2 / 3 / 4
    assert space.size() == 25 * per_stage**5
    assert 1e19 < per_stage**5 < 1e20  # Once-for-All's "about 10^19" architectures
    assert space.gene("s1.b0.kernel").choices == (3, 5, 7)
    assert space.gene("s5.b3.expand").active_if == ("s5.depth", (4,))


def test_inactive_blocks_do_not_change_the_key():
    supernet = OFAMobileNetV3(preset="tiny")
    config = supernet.space.largest().to_dict()
    config["s1.depth"] = 2
    shallow = supernet.subnet(config)
    assert "s1.b2.kernel" not in shallow.to_dict()
    config["s1.b2.kernel"] = 3
    config["s1.b3.expand"] = 3
    assert supernet.subnet(config).key == shallow.key
    assert OFAMobileNetV3(preset="tiny").subnet(config).key == shallow.key
    assert OFAMobileNetV3(preset="full").space.signature != supernet.space.signature


@pytest.mark.parametrize(("cls", "preset"), TINY, ids=IDS)
def test_bad_configs_name_the_gene_and_allowed_values(cls, preset):
    supernet = cls(preset=preset)
    config = supernet.space.smallest().to_dict()
    gene = supernet.space.genes[1]
    config[gene.name] = 999
    with pytest.raises(ConfigError) as info:
        supernet.subnet(config)
    assert repr(gene.name) in str(info.value)
    assert str(list(gene.choices)) in str(info.value)
    other = OFAMobileNetV3 if cls is not OFAMobileNetV3 else ElasticResNetSupernet
    with pytest.raises(ConfigError, match="belongs to space"):
        supernet.subnet(other(preset="tiny").space.smallest())


# -- extraction ----------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "preset"), TINY, ids=IDS)
@PROPERTY
@given(seed=SEEDS)
def test_extracted_subnet_equals_the_supernet_with_it_active(cls, preset, seed):
    supernet, module = built(cls, preset)
    subnet = supernet.space.sample(seed)
    static = supernet.extract(module, subnet)
    x = supernet.example_input(subnet, batch=2, seed=seed % 1000)
    with torch.no_grad():
        supernet.set_active(module, subnet)
        expected = module(x)
        got = static(x)
    assert got.shape == expected.shape
    assert max_diff(got, expected) <= 1e-5


@pytest.mark.parametrize(("cls", "preset"), TINY, ids=IDS)
def test_extracted_module_is_static_and_owns_its_weights(cls, preset):
    supernet, module = built(cls, preset)
    subnet = supernet.space.sample(7)
    static = supernet.extract(module, subnet)
    elastic = [type(m).__name__ for m in static.modules() if type(m).__name__.startswith("Elastic")]
    assert not elastic
    assert not any("transform_" in name for name, _ in static.named_parameters())
    assert sum(p.numel() for p in static.parameters()) < sum(p.numel() for p in module.parameters())
    supernet_storage = {p.untyped_storage().data_ptr() for p in module.parameters()}
    assert not any(p.untyped_storage().data_ptr() in supernet_storage for p in static.parameters())
    x = supernet.example_input(subnet)
    with torch.no_grad():
        before = static(x)
        # the supernet may go on training; the static copy must not notice
        for p in module.parameters():
            p.add_(1.0)
        after = static(x)
        for p in module.parameters():
            p.sub_(1.0)
    assert torch.equal(before, after)


@pytest.mark.parametrize(
    ("cls", "subnets"),
    [
        (OFAMobileNetV3, ("smallest", 3)),
        (ElasticResNetSupernet, ("smallest",)),
        (ElasticTransformer, ("smallest",)),
    ],
    ids=["ofa-mbv3", "elastic-resnet", "elastic-transformer"],
)
def test_full_size_extraction_is_equivalent(cls, subnets):
    supernet = cls(preset="full")
    module = randomise(supernet.build())
    for which in subnets:
        subnet = supernet.space.smallest() if which == "smallest" else supernet.space.sample(which)
        static = supernet.extract(module, subnet)
        x = supernet.example_input(subnet)
        with torch.no_grad():
            supernet.set_active(module, subnet)
            assert max_diff(static(x), module(x)) <= 1e-5


def test_example_inputs_follow_the_resolution_gene_and_input_kind():
    mbv3 = OFAMobileNetV3(preset="tiny")
    config = mbv3.space.smallest().to_dict() | {"resolution": 28}
    subnet = mbv3.subnet(config)
    assert tuple(mbv3.example_input(subnet, batch=3).shape) == (3, 1, 28, 28)
    assert mbv3.input_spec(subnet).shape == (1, 1, 28, 28)
    assert tuple(mbv3.adapt_input(torch.zeros(4, 1, 8, 8), subnet).shape) == (4, 1, 28, 28)
    text = ElasticTransformer(preset="tiny-text")
    tokens = text.example_input(text.space.smallest(), batch=2)
    assert tokens.dtype == torch.int64 and tuple(tokens.shape) == (2, 16)
    assert int(tokens.max()) < 64 and text.input_spec(text.space.smallest()).dtype == "int64"
    assert torch.equal(mbv3.example_input(subnet, seed=4), mbv3.example_input(subnet, seed=4))


# -- settings, arguments, checkpoints ---------------------------------------------------------


def test_configure_converts_cli_strings_and_rejects_bad_settings():
    supernet = OFAMobileNetV3.configure(
        "tiny", {"num_classes": "5", "resolutions": "16,24", "stage_se": "0,1,1"}
    )
    assert supernet.settings.num_classes == 5
    assert supernet.settings.resolutions == (16, 24)
    assert supernet.settings.stage_se == (False, True, True)
    assert supernet.space.gene("resolution").choices == (16, 24)
    subnet = supernet.space.smallest()
    assert supernet.extract(supernet.build(), subnet)(supernet.example_input(subnet)).shape == (
        1,
        5,
    )
    with pytest.raises(UnknownNameError, match="no preset 'huge'"):
        OFAMobileNetV3.configure("huge")
    with pytest.raises(ConfigError, match="'num_classes' = 'many'"):
        OFAMobileNetV3.configure("tiny", {"num_classes": "many"})
    with pytest.raises(ConfigError, match="no setting 'colour'"):
        OFAMobileNetV3.configure("tiny", {"colour": "red"})
    with pytest.raises(ConfigError, match="num_stages=9"):
        OFAMobileNetV3.configure("tiny", {"num_stages": 9})
    with pytest.raises(ConfigError, match="not divisible by heads"):
        ElasticTransformer.configure("tiny", {"heads": "3"})
    with pytest.raises(ConfigError, match="embedding 'pixels'"):
        ElasticTransformer.configure("tiny", {"embedding": "pixels"})


@pytest.mark.parametrize(("cls", "preset"), TINY, ids=IDS)
def test_arguments_rebuild_the_same_supernet(cls, preset):
    supernet = cls.configure(preset, {"num_classes": 7})
    again = cls.from_arguments(supernet.arguments)
    assert again.settings == supernet.settings
    assert again.space.signature == supernet.space.signature
    a, b = supernet.build().state_dict(), again.build().state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    supernet, module = built(OFAMobileNetV3, "tiny")
    path = write_checkpoint(tmp_path / "ckpt.pt", supernet, module, epoch=3)
    loaded, restored, _ = load_checkpoint(path)
    assert loaded.settings == supernet.settings
    subnet = supernet.space.sample(11)
    x = supernet.example_input(subnet)
    with torch.no_grad():
        supernet.set_active(module, subnet)
        loaded.set_active(restored.eval(), subnet)
        assert torch.equal(module(x), restored(x))
    wider = OFAMobileNetV3.configure("tiny", {"stem_width": 16})
    with pytest.raises(ConfigError, match="does not fit supernet 'ofa-mbv3'"):
        wider.load_state_dict(wider.build(), module.state_dict())
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not an hwnas supernet checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="holds supernet 'ofa-mbv3', not 'elastic-resnet'"):
        load_checkpoint(path, supernet="elastic-resnet")


def test_training_a_subnet_updates_only_its_slice():
    supernet = OFAMobileNetV3(preset="tiny")
    module = supernet.build().train()
    config = supernet.space.smallest().to_dict()  # kernel 3: the 7->5->3 transforms are in use
    subnet = supernet.subnet(config)
    block = module.stages[0][0]
    stats_before = block.depth_bn.running_mean.clone()
    out = supernet.forward(module, subnet, torch.randn(4, 1, 8, 8))
    out.sum().backward()
    mid = block.active_mid
    assert mid < block.depth_bn.num_features
    assert block.depth_conv.transform_7to5.grad is not None
    assert block.depth_conv.transform_7to5.grad.abs().sum() > 0
    assert block.depth_conv.transform_5to3.grad.abs().sum() > 0
    stats_after = block.depth_bn.running_mean
    assert not torch.equal(stats_after[:mid], stats_before[:mid])
    assert torch.equal(stats_after[mid:], stats_before[mid:])
    unused = module.stages[0][3]  # depth 2: blocks 2 and 3 of stage 1 did not run
    assert unused.depth_conv.weight.grad is None


# -- BN recalibration ----------------------------------------------------------------------------


def test_recalibration_sets_statistics_to_the_calibration_average():
    supernet, module = built(OFAMobileNetV3, "tiny")
    subnet = supernet.space.sample(5)
    static = supernet.extract(module, subnet)
    batches = [
        torch.randn(8, 1, 12, 12, generator=torch.Generator().manual_seed(i)) for i in range(3)
    ]
    prepared = [supernet.adapt_input(b, subnet) for b in batches]
    first = static.stem[1]
    momentum = first.momentum
    used = recalibrate_batch_norm(
        static, [(b, None) for b in batches], prepare=lambda x: supernet.adapt_input(x, subnet)
    )
    assert used == 3
    with torch.no_grad():
        means = [static.stem[0](x).mean((0, 2, 3)) for x in prepared]
    assert torch.allclose(first.running_mean, torch.stack(means).mean(0), atol=1e-5)
    assert first.momentum == momentum and not static.training and not first.training
    assert int(first.num_batches_tracked) == 3
    assert recalibrate_batch_norm(static, batches, max_batches=1) == 1


def test_calibrate_subnet_leaves_the_supernet_alone():
    supernet, module = built(OFAMobileNetV3, "tiny")
    before = {k: v.clone() for k, v in module.state_dict().items()}
    subnet = supernet.space.sample(9)
    batches = [torch.randn(4, 1, 8, 8) for _ in range(2)]
    static = calibrate_subnet(supernet, module, subnet, batches)
    assert not static.training
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert batch_norm_layers(static)
    assert all(int(bn.num_batches_tracked) == 2 for bn in batch_norm_layers(static))
    with pytest.raises(ConfigError, match="no batches"):
        recalibrate_batch_norm(static, [])
