"""Zero-cost proxies on the embedded default, the RoBoT-style combination, and supernet free statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from hwnas.errors import ConfigError
from hwnas.model.zero_cost import PROXIES, combined_score, fit_combination, proxy_scores


@pytest.fixture(scope="module")
def default_model():  # type: ignore[no-untyped-def]
    import torch

    from hwnas.model.loader import load_supernet

    torch.manual_seed(0)
    loaded = load_supernet()
    batch = next(iter(loaded.data().calibration.batches(16)))
    return loaded, batch


@pytest.mark.slow
def test_proxies_are_finite_and_do_not_touch_the_supernet(plugin_host, default_model) -> None:
    loaded, batch = default_model
    net, module = loaded.supernet, loaded.module
    before = {k: v.clone() for k, v in module.state_dict().items()}
    small = proxy_scores(net, module, net.space.smallest(), batch)
    large = proxy_scores(net, module, net.space.largest(), batch)
    assert list(small) == list(PROXIES)
    assert all(np.isfinite(v) for v in (*small.values(), *large.values()))
    assert (
        small["params"]
        < large["params"]
        == sum(p.numel() for p in net.extract(module, net.space.largest()).parameters())
    )
    assert small != large
    assert all((module.state_dict()[k] == v).all() for k, v in before.items())
    with pytest.raises(ConfigError, match="unknown zero-cost proxies"):
        proxy_scores(net, module, net.space.smallest(), batch, ("naswot",))
    with pytest.raises(ConfigError, match="at least 2 examples"):
        proxy_scores(net, module, net.space.smallest(), (batch[0][:1], batch[1][:1]))


def test_combination_weights_follow_the_informative_proxy() -> None:
    rng = np.random.default_rng(0)
    accuracy = rng.random(40)
    scores = np.column_stack(
        [rng.random(40), accuracy + 0.05 * rng.random(40), -accuracy + 0.3 * rng.random(40)]
    )
    weights = fit_combination(scores[:12], accuracy[:12])
    assert abs(weights).argmax() in (1, 2) and weights[2] <= 0 <= weights[1]
    tau = kendalltau(combined_score(scores[12:], weights, scores[:12]), accuracy[12:]).statistic
    assert tau > 0.7


@pytest.mark.slow
def test_supernet_statistics_count_the_ir_and_sum_the_table(plugin_host, default_model) -> None:
    from hwnas.ir import GraphIR
    from hwnas.measurement.kernel_table import KernelTable
    from hwnas.search_core.subnet_objectives import SubnetModels
    from hwnas.search_core.supernet_statistics import SupernetStatistics

    loaded, batch = default_model
    net, module = loaded.supernet, loaded.module
    subnet = net.space.smallest()
    ir = GraphIR.from_subnet(net, module, subnet)
    keys = [g.key for g in ir.kernel_groups]
    table = KernelTable("t", "h", {}, {k: 0.01 for k in keys[1:]})  # the first kernel unknown
    statistics = SupernetStatistics(
        SubnetModels(net, module), kernel_table=table, proxies=("jacob_cov",), batch=batch
    )
    assert statistics.names == ("macs", "params", "peak_memory", "lut_latency", "proxy_jacob_cov")
    assert not statistics.cheap and statistics.prior("latency") == "lut_latency"
    row = statistics.compute([subnet])[0]
    assert row[0] == ir.macs and row[1] == ir.params and row[2] == ir.peak_activation_bytes
    assert row[3] == pytest.approx(0.01 * len(keys))  # the unknown kernel counted at the median
    assert statistics.missing_kernels == {keys[0]}
