"""Predictors: registration, fit/predict on learnable data, input checks, the quality report, the kernel LUT."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.errors import ConfigError, HwnasError
from hwnas.registry import predictor_class, predictor_classes
from hwnas.search_core.predictor import PredictionQuality, Predictor, prediction_quality

VECTOR_PREDICTORS = ("ridge", "svr", "mlp", "gbdt", "lstsq", "lad")


def _learnable(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A positive, mildly non-linear target of 8 features: like a latency built from layer choices."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, size=(n, 8)).astype(float)
    y = 2.0 + X @ np.array([3.0, 1.0, 0.5, 2.0, 0.0, 1.5, 0.2, 4.0]) + 1.5 * X[:, 0] * X[:, 3]
    return X, y


def test_builtin_predictors_are_registered(plugin_host) -> None:
    assert set(VECTOR_PREDICTORS) | {"kernel-lut"} <= set(predictor_classes())
    for name in (*VECTOR_PREDICTORS, "kernel-lut"):
        assert issubclass(predictor_class(name), Predictor) and predictor_class(name).name == name
    assert predictor_class("kernel-lut").input_kind == "kernels"


@pytest.mark.parametrize("name", VECTOR_PREDICTORS)
@pytest.mark.parametrize("target", ["raw", "log"])
def test_vector_predictors_learn_and_report_quality(plugin_host, name: str, target: str) -> None:
    X, y = _learnable(260)
    predictor = predictor_class(name).with_target(target).fit(X[:160], y[:160])
    assert predictor.target == target
    predicted = predictor.predict(X[160:])
    assert predicted.shape == (100,)
    quality = predictor.quality(X[160:], y[160:])
    assert isinstance(quality, PredictionQuality) and quality.n == 100
    assert quality.kendall_tau > 0.8, quality
    assert quality.mape < 0.1, quality
    assert "kendall_tau=" in str(quality)


def test_quality_report_figures_are_exact() -> None:
    quality = prediction_quality(np.array([1.0, 2.19, 2.9, 5.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert quality.n == 4
    assert quality.kendall_tau == pytest.approx(1.0)
    assert quality.mape == pytest.approx((0 + 0.095 + 0.1 / 3 + 0.25) / 4)
    assert quality.within_10pct == pytest.approx(0.75)
    reversed_quality = prediction_quality(
        np.array([4.0, 3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0, 4.0])
    )
    assert reversed_quality.kendall_tau == pytest.approx(-1.0)
    with pytest.raises(ConfigError):
        prediction_quality(np.array([1.0]), np.array([1.0]))


def test_predictor_input_checks(plugin_host) -> None:
    ridge = predictor_class("ridge")
    with pytest.raises(HwnasError, match="not fitted"):
        ridge().predict(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="3 examples but 2 targets"):
        ridge().fit(np.zeros((3, 2)), [1.0, 2.0])
    with pytest.raises(ConfigError, match="2-D"):
        ridge().fit(np.zeros(3), [1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="NaN"):
        ridge().fit(np.array([[0.0], [np.nan]]), [1.0, 2.0])
    with pytest.raises(ConfigError, match="positive"):
        ridge.with_target("log").fit(np.eye(3), [1.0, 0.0, 2.0])
    with pytest.raises(ConfigError, match="unknown target 'sqrt'"):
        ridge.with_target("sqrt")
    with pytest.raises(ConfigError, match="takes RidgeSettings"):
        ridge(predictor_class("svr").settings_class())
    with pytest.raises(ConfigError, match="at least 2"):
        ridge().fit(np.zeros((1, 2)), [1.0])


def _kernel_world(n: int, seed: int = 0) -> tuple[list[list[str]], np.ndarray, dict[str, float]]:
    """Architectures as kernel lists; true latency = 1.2 x the kernel sum + 0.3 ms per conv (launch cost)."""
    rng = np.random.default_rng(seed)
    costs = {f"conv{k}x{k}_c{c}": 0.1 * k * k * c for k in (1, 3, 5) for c in (1, 2, 4)} | {
        "pool": 0.2,
        "fc": 0.5,
    }
    kinds = sorted(costs)
    archs = [
        ["fc"] + [str(rng.choice(kinds)) for _ in range(int(rng.integers(3, 9)))] for _ in range(n)
    ]
    y = np.array(
        [1.2 * sum(costs[k] for k in a) + 0.3 * sum(k.startswith("conv") for k in a) for a in archs]
    )
    return archs, y, costs


def test_kernel_lut_measures_each_kernel_once_and_corrects_the_sum(plugin_host) -> None:
    archs, y, costs = _kernel_world(300)
    calls: list[str] = []

    def measure_kernel(key: str) -> float:
        calls.append(key)
        return costs[key]

    lut_class = predictor_class("kernel-lut")
    plain = lut_class(
        lut_class.settings_class(correction="none"), measure_kernel=measure_kernel
    ).fit(archs[:80], y[:80])
    corrected = lut_class(measure_kernel=measure_kernel)
    corrected.fit(archs[:80], y[:80])
    assert sorted(set(calls)) == sorted(
        calls[: len(set(calls))]
    )  # each kernel measured once per table
    assert plain.kernels_measured == len(plain.table) <= len(costs)
    np.testing.assert_allclose(
        plain.kernel_sums(archs[:3]), [sum(costs[k] for k in a) for a in archs[:3]]
    )
    plain_quality = plain.quality(archs[80:], y[80:])
    corrected_quality = corrected.quality(archs[80:], y[80:])
    assert plain_quality.within_10pct < 0.5  # the bare sum misses the 20 % and the launch costs
    assert corrected.correction == "ridge"  # chosen by cross-validation
    assert corrected_quality.within_10pct >= 0.95, corrected_quality
    assert corrected_quality.kendall_tau > plain_quality.kendall_tau - 0.01


def test_kernel_lut_repairs_an_additive_table_error(plugin_host) -> None:
    """A table whose reference kernel was timed 2 ms slow puts every sum off by the same
    amount: the additive correction removes it, a multiplicative (log-scale) one cannot."""
    archs, _, costs = _kernel_world(300)
    y = np.array([sum(costs[k] for k in a) for a in archs])
    table = dict(costs) | {"fc": costs["fc"] - 2.0}
    lut_class = predictor_class("kernel-lut")
    raw = lut_class(table=table).fit(archs[:60], y[:60])
    logged = lut_class(lut_class.settings_class(target="log"), table=table).fit(archs[:60], y[:60])
    assert raw.correction in ("constant", "affine", "ridge")
    assert raw.quality(archs[60:], y[60:]).within_10pct > 0.99
    assert logged.quality(archs[60:], y[60:]).within_10pct < 0.9


def test_auto_target_is_chosen_by_held_out_error(plugin_host) -> None:
    rng = np.random.default_rng(1)
    X = rng.integers(0, 3, size=(120, 5)).astype(float)
    additive = 1.0 + X @ np.array([2.0, 1.0, 0.5, 3.0, 0.2])
    multiplicative = np.exp(0.1 + X @ np.array([0.6, 0.3, 0.2, 0.5, 0.1]))
    assert predictor_class("lstsq")().fit(X, additive).target == "raw"
    assert predictor_class("lstsq")().fit(X, multiplicative).target == "log"
    assert predictor_class("lstsq")().fit(X, additive - 5.0).target == "raw"  # not all positive


def test_fits_run_single_threaded_even_after_scipy_loaded(plugin_host) -> None:
    """The limiter must see the BLAS and OpenMP pools scipy and scikit-learn load, not only numpy's."""
    from threadpoolctl import threadpool_info

    from hwnas.search_core.predictor import single_threaded

    X, y = _learnable(60)
    predictor_class("ridge")().fit(X, y)
    predictor_class("lad")().fit(X, y)
    with single_threaded():
        pools = threadpool_info()
    assert any("scipy" in (p.get("filepath") or "") for p in pools) or len(pools) >= 2
    assert all(p["num_threads"] == 1 for p in pools), pools


def test_kernel_lut_needs_a_measurer_for_unknown_kernels(plugin_host) -> None:
    lut_class = predictor_class("kernel-lut")
    predictor = lut_class(table={"a": 1.0, "b": 2.0})
    predictor.fit([["a"], ["a", "b"], ["b", "b"]], [1.1, 3.2, 4.1])
    assert predictor.predict([["a", "b"]]).shape == (1,)
    with pytest.raises(ConfigError, match="kernel 'c' is not in the lookup table"):
        predictor.predict([["c"]])
    with pytest.raises(ConfigError, match="list of kernel keys"):
        predictor.fit(["ab", "ba"], [1.0, 2.0])
    with pytest.raises(ConfigError, match="unknown correction 'linear'"):
        lut_class(lut_class.settings_class(correction="linear"))
