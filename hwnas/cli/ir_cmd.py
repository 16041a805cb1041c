"""``hwnas ir SUPERNET SUBNET.json``: the subnet's graph IR as an op table, kernel groups and totals.

Optionally writes the IR as JSON or ONNX; building the IR exports the extracted subnet with torch.
"""

from __future__ import annotations

from pathlib import Path

import click

from hwnas.cli.options import load_model, supernet_options
from hwnas.cli.output import print_json, print_table


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


@click.command()
@click.argument("supernet")
@supernet_options
@click.argument("subnet_file", metavar="SUBNET.json", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the IR as JSON instead of tables.")
@click.option(
    "--batch", type=int, default=1, show_default=True, help="Batch size of the example input."
)
@click.option(
    "--onnx",
    "onnx_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the subnet as ONNX here.",
)
def ir(
    supernet: str,
    preset: str | None,
    settings: tuple[str, ...],
    checkpoint: Path | None,
    subnet_file: Path,
    as_json: bool,
    batch: int,
    onnx_path: Path | None,
) -> None:
    """Build the graph IR of the subnet in SUBNET.json and show its ops, kernel groups and totals."""
    from hwnas.errors import ConfigError
    from hwnas.ir import GraphIR

    if batch < 1:
        raise ConfigError(f"--batch {batch}: must be at least 1")
    loaded = load_model(supernet, preset, settings, checkpoint)
    net, module = loaded.supernet, loaded.module
    chosen = net.space.load_subnet(subnet_file)
    graph = GraphIR.from_subnet(net, module, chosen, batch=batch)
    if onnx_path is not None:
        graph.to_onnx(onnx_path)
    if as_json:
        print_json(graph.to_dict())
        return
    op_rows = [
        (
            op.name,
            op.kind,
            ", ".join(_shape(t.shape) for t in op.outputs),
            f"{op.macs:,}",
            f"{op.params:,}",
            op.module,
        )
        for op in graph.ops
    ]
    print_table(
        f"ops of {graph.name}", ["op", "kind", "output", "MACs", "params", "module"], op_rows
    )
    kernel_rows = [(k.name, k.kind, f"{k.macs:,}", k.key) for k in graph.kernel_groups]
    print_table("kernel groups", ["kernel", "kind", "MACs", "key"], kernel_rows)
    totals = graph.totals()
    total_rows = [(name, f"{value:,}") for name, value in totals.items()]
    total_rows.append(("key", graph.key))
    if onnx_path is not None:
        total_rows.append(("onnx", str(onnx_path)))
    print_table("totals", ["", "value"], total_rows)
