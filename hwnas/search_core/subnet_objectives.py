"""Objective providers for subnets of a supernet: IR costs, measured latency on a target, accuracy or fidelity.

They plug a supernet and a target into the search core's evaluator seam
(:class:`~hwnas.search_core.evaluator.ObjectiveProvider`); the search itself knows neither.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError
from hwnas.search_core.evaluator import Metrics, ObjectiveProvider

if TYPE_CHECKING:
    import torch

    from hwnas.ir import GraphIR
    from hwnas.measurement.measurer import Measurer
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.model.loader import LoadedSupernet
    from hwnas.model.search_space import Subnet
    from hwnas.model.supernet import Supernet
    from hwnas.search_core.precision import Int8Models

IR_METRICS = ("macs", "params", "peak_memory")


class SubnetModels:
    """The graph IR of each subnet of one supernet module, built once and kept for the next provider.

    With ``int8`` models, a subnet whose precision gene is int8 gets its
    quantised model's IR (see :mod:`hwnas.search_core.precision`).
    """

    def __init__(
        self,
        supernet: Supernet,
        module: torch.nn.Module,
        keep: int = 4,
        int8: Int8Models | None = None,
    ) -> None:
        self.supernet = supernet
        self.module = module
        self.keep = keep
        self.int8 = int8
        self._irs: OrderedDict[str, GraphIR] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_irs": OrderedDict()}  # IRs are rebuilt where they are used

    def ir(self, subnet: Subnet) -> GraphIR:
        from hwnas.ir import GraphIR
        from hwnas.search_core.precision import split_precision

        subnet, precision = split_precision(self.supernet, subnet)
        if precision == "int8":
            if self.int8 is None:
                raise ConfigError(f"{subnet}: this search builds no int8 models")
            return self.int8.ir(subnet)
        if subnet.key in self._irs:
            self._irs.move_to_end(subnet.key)
            return self._irs[subnet.key]
        ir = GraphIR.from_subnet(self.supernet, self.module, subnet)
        self._irs[subnet.key] = ir
        while len(self._irs) > self.keep:
            self._irs.popitem(last=False)
        return ir


class IRCostProvider(ObjectiveProvider):
    """MACs, parameters and peak activation memory (bytes), counted on the subnet's graph IR."""

    def __init__(self, models: SubnetModels) -> None:
        self.models = models

    @property
    def provides(self) -> tuple[str, ...]:
        return IR_METRICS

    def measure(self, subnet: Subnet) -> Metrics:
        from hwnas.search_core.precision import split_precision

        # counts of the architecture (the fp32 graph), whatever precision it is deployed in
        ir = self.models.ir(split_precision(self.models.supernet, subnet)[0])
        return Metrics(
            {
                "macs": float(ir.macs),
                "params": float(ir.params),
                "peak_memory": float(ir.peak_activation_bytes),
            }
        )


class LatencyProvider(ObjectiveProvider):
    """Median latency (ms) measured on a target: compiled, verified against its reference, timed in isolation, cached.

    Beside ``latency`` it gives how often the noise check re-measured
    (``latency_remeasures``) and whether the kept samples are still noisy
    (``latency_noisy``, 0/1): the report shows them with the raw samples.
    An int8 subnet is checked against its quantised model, to the tolerance
    :func:`~hwnas.search_core.precision.int8_tolerance` sets unless the
    protocol fixes one; on a target that cannot run int8 it fails with the reason.
    """

    def __init__(self, models: SubnetModels, measurer: Measurer) -> None:
        self.models = models
        self.measurer = measurer
        self._by_tolerance: dict[tuple[float, float], Measurer] = {}

    @property
    def provides(self) -> tuple[str, ...]:
        return ("latency", "latency_remeasures", "latency_noisy")

    def measure(self, subnet: Subnet) -> Metrics:
        from hwnas.errors import MeasurementError
        from hwnas.search_core.precision import PRECISION_GENE

        precision = str(subnet.get(PRECISION_GENE, "fp32"))
        support = self.measurer.target.supports_precision(precision)
        if not support:
            raise MeasurementError(f"infeasible on this target: {support.reason}")
        ir = self.models.ir(subnet)
        measurement = self.measurer_for(ir).measure(ir)
        return Metrics(
            {
                "latency": measurement.median_ms,
                "latency_remeasures": float(len(measurement.discarded_s)),
                "latency_noisy": float(measurement.noisy),
            },
            tuple(s * 1e3 for s in measurement.samples_s),
        )

    def measurer_for(self, ir: GraphIR) -> Measurer:
        """This provider's measurer, or for a quantised model one checking to its own tolerance."""
        import dataclasses

        from hwnas.measurement.measurer import Measurer

        tolerance = ir.metadata.get("tolerance")
        if tolerance is None:
            return self.measurer
        protocol = self.measurer.protocol
        user = self.measurer.requested
        rtol = user.rtol if user.rtol is not None else float(tolerance[0])
        atol = user.atol if user.atol is not None else float(tolerance[1])
        if (rtol, atol) not in self._by_tolerance:
            self._by_tolerance[(rtol, atol)] = Measurer(
                self.measurer.target,
                dataclasses.replace(protocol, rtol=rtol, atol=atol),
                cache=self.measurer.cache,
                artifact_dir=self.measurer.artifact_dir,
                pool=self.measurer.pool,
            )
        return self._by_tolerance[(rtol, atol)]

    def fingerprint(self) -> str:
        from hwnas.digests import stable_hash

        target = self.measurer.target
        return f"latency@{target.name}:{target.fingerprint_hash()}:{stable_hash(self.measurer.protocol.key())}"


class AccuracyProvider(ObjectiveProvider):
    """Validation accuracy (or, for encoders, ``fidelity``) of a subnet with the supernet's weights, from ``accuracy_of``."""

    def __init__(
        self, accuracy_of: Callable[[Subnet], float], fingerprint: str, metric: str = "accuracy"
    ) -> None:
        self.accuracy_of = accuracy_of
        self._fingerprint = fingerprint
        self.metric = metric

    @property
    def provides(self) -> tuple[str, ...]:
        return (self.metric,)

    def measure(self, subnet: Subnet) -> Metrics:
        return Metrics({self.metric: float(self.accuracy_of(subnet))})

    def fingerprint(self) -> str:
        return self._fingerprint


def supernet_providers(
    loaded: LoadedSupernet,
    metrics: Sequence[str],
    target: str | None,
    protocol: MeasurementProtocol,
    data: str | None = None,
    precisions: Sequence[str] = ("fp32",),
    calibration: Any = None,
) -> tuple[list[ObjectiveProvider], dict[str, Any]]:
    """The providers a search over ``loaded`` needs for ``metrics``, and a description of the target used.

    IR costs come first so that latency reuses the IR they built (and are
    recorded whenever latency is measured, since the IR is built anyway); latency
    needs ``target``; accuracy (or fidelity, for an encoder distilled from a
    pretrained model) uses the checkpoint's data unless ``data`` is given.
    With ``int8`` in ``precisions`` the subnets carry a precision gene, int8
    ones are quantised (on ``calibration`` examples, else the calibration
    split) and scored and timed as quantised.
    """
    from hwnas.measurement.measurer import Measurer

    known = {*IR_METRICS, "latency", "accuracy", "fidelity"}
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ConfigError(
            f"a supernet search cannot compute {', '.join(map(repr, unknown))}",
            hint=f"metrics of a supernet search: {', '.join(sorted(known))}",
        )
    dataset = None
    int8 = None
    if "int8" in precisions:
        from hwnas.search_core.precision import Int8Models, check_calibration_fits

        if calibration is not None:
            check_calibration_fits(loaded.supernet, calibration, "--calibration")
        dataset = loaded.data(data)
        int8 = Int8Models(loaded.supernet, loaded.module, dataset, calibration=calibration)
    models = SubnetModels(loaded.supernet, loaded.module, int8=int8)
    providers: list[ObjectiveProvider] = []
    target_info: dict[str, Any] = {}
    if "latency" in metrics or any(m in IR_METRICS for m in metrics):
        providers.append(IRCostProvider(models))
    if "latency" in metrics:
        if not target:
            raise ConfigError("the latency objective needs --target", hint="see `hwnas targets`")
        measurer = Measurer(target, protocol)
        providers.append(LatencyProvider(models, measurer))
        target_info = measurer.target.to_dict() | {"label": measurer.target.label}
        for precision in precisions:
            support = measurer.target.supports_precision(precision)
            if not support:
                target_info.setdefault("infeasible", {})[precision] = support.reason
    for metric in ("accuracy", "fidelity"):
        if metric in metrics:
            providers.append(_score_provider(loaded, metric, dataset or loaded.data(data), int8))
    return providers, target_info


def _score_provider(
    loaded: LoadedSupernet, metric: str, data: Any, int8: Int8Models | None
) -> AccuracyProvider:
    from hwnas.model.accuracy import SubnetAccuracy, SubnetFidelity

    if metric == "accuracy" and loaded.metric == "fidelity":
        raise ConfigError(
            f"{loaded.source} is an encoder distilled without labels: its subnets have no accuracy",
            hint="score them by fidelity to the pretrained model: --objectives fidelity,latency",
        )
    score = (SubnetFidelity if metric == "fidelity" else SubnetAccuracy)(
        loaded.supernet, loaded.module, data
    )
    if int8 is None:
        return AccuracyProvider(score, score.fingerprint, metric)
    from hwnas.search_core.precision import PrecisionScore, QuantizedScore

    both = PrecisionScore(loaded.supernet, score, QuantizedScore(int8, metric))
    return AccuracyProvider(both, f"{score.fingerprint}:int8", metric)
