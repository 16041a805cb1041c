"""Objective providers for subnets of a supernet: IR costs, measured latency on a target, accuracy.

They plug a supernet and a target into the search core's evaluator seam
(:class:`~hwnas.search_core.evaluator.ObjectiveProvider`); the search itself knows neither.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hwnas.search_core.evaluator import Metrics, ObjectiveProvider

if TYPE_CHECKING:
    import torch

    from hwnas.ir import GraphIR
    from hwnas.measurement.measurer import Measurer
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.model.loader import LoadedSupernet
    from hwnas.model.search_space import Subnet
    from hwnas.model.supernet import Supernet

IR_METRICS = ("macs", "params", "peak_memory")


class SubnetModels:
    """The graph IR of each subnet of one supernet module, built once and kept for the next provider."""

    def __init__(self, supernet: Supernet, module: torch.nn.Module, keep: int = 4) -> None:
        self.supernet = supernet
        self.module = module
        self.keep = keep
        self._irs: OrderedDict[str, GraphIR] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_irs": OrderedDict()}  # IRs are rebuilt where they are used

    def ir(self, subnet: Subnet) -> GraphIR:
        from hwnas.ir import GraphIR

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
        ir = self.models.ir(subnet)
        return Metrics(
            {
                "macs": float(ir.macs),
                "params": float(ir.params),
                "peak_memory": float(ir.peak_activation_bytes),
            }
        )


class LatencyProvider(ObjectiveProvider):
    """Median latency (ms) measured on a target: compiled, verified against torch, timed in isolation, cached.

    Beside ``latency`` it gives how often the noise check re-measured
    (``latency_remeasures``) and whether the kept samples are still noisy
    (``latency_noisy``, 0/1): the report shows them with the raw samples.
    """

    def __init__(self, models: SubnetModels, measurer: Measurer) -> None:
        self.models = models
        self.measurer = measurer

    @property
    def provides(self) -> tuple[str, ...]:
        return ("latency", "latency_remeasures", "latency_noisy")

    def measure(self, subnet: Subnet) -> Metrics:
        measurement = self.measurer.measure(self.models.ir(subnet))
        return Metrics(
            {
                "latency": measurement.median_ms,
                "latency_remeasures": float(len(measurement.discarded_s)),
                "latency_noisy": float(measurement.noisy),
            },
            tuple(s * 1e3 for s in measurement.samples_s),
        )

    def fingerprint(self) -> str:
        from hwnas.digests import stable_hash

        target = self.measurer.target
        return f"latency@{target.name}:{target.fingerprint_hash()}:{stable_hash(self.measurer.protocol.key())}"


class AccuracyProvider(ObjectiveProvider):
    """Validation accuracy of a subnet with the supernet's weights (BN recalibrated), from ``accuracy_of``."""

    def __init__(self, accuracy_of: Callable[[Subnet], float], fingerprint: str) -> None:
        self.accuracy_of = accuracy_of
        self._fingerprint = fingerprint

    @property
    def provides(self) -> tuple[str, ...]:
        return ("accuracy",)

    def measure(self, subnet: Subnet) -> Metrics:
        return Metrics({"accuracy": float(self.accuracy_of(subnet))})

    def fingerprint(self) -> str:
        return self._fingerprint


def supernet_providers(
    loaded: LoadedSupernet,
    metrics: Sequence[str],
    target: str | None,
    protocol: MeasurementProtocol,
    data: str | None = None,
) -> tuple[list[ObjectiveProvider], dict[str, Any]]:
    """The providers a search over ``loaded`` needs for ``metrics``, and a description of the target used.

    IR costs come first so that latency reuses the IR they built (and are
    recorded whenever latency is measured, since the IR is built anyway); latency
    needs ``target``; accuracy uses the checkpoint's data unless ``data`` is given.
    """
    from hwnas.errors import ConfigError
    from hwnas.measurement.measurer import Measurer

    known = {*IR_METRICS, "latency", "accuracy"}
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ConfigError(
            f"a supernet search cannot compute {', '.join(map(repr, unknown))}",
            hint=f"metrics of a supernet search: {', '.join(sorted(known))}",
        )
    models = SubnetModels(loaded.supernet, loaded.module)
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
    if "accuracy" in metrics:
        from hwnas.model.accuracy import SubnetAccuracy

        accuracy = SubnetAccuracy(loaded.supernet, loaded.module, loaded.data(data))
        providers.append(AccuracyProvider(accuracy, accuracy.fingerprint))
    return providers, target_info
