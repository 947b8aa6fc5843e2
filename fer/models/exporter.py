"""Exporting a checkpoint's network as an ONNX graph (torch's side of :mod:`fer.models.graphs`,
and ``fer export``'s exporter): the module the graph holds (:class:`Network`), the one exporter
(:func:`export_graph`) and the parity check that vouches for every graph it writes.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from fer.atomic import StagedFile
from fer.contracts import ROI_NAMES
from fer.errors import FerError
from fer.models.tta import logits

TOLERANCE = 1e-4  # the largest |logit| difference from eager mode a graph may show


def input_names(ck) -> tuple[str, ...]:
    """``forward()``'s arguments: the face, and for a Global-ROI Net the three ROI crops."""
    return ("face", *ROI_NAMES) if ck.kind == "roi" else ("face",)


class Network(nn.Module):
    """One checkpoint's network as the graph runs it: its inputs → main logits under ``tta``."""

    def __init__(self, model: nn.Module, names: tuple[str, ...], tta: str):
        super().__init__()
        self.model, self.names, self.tta = model, names, tta
        self.eval()  # the graph is traced in eval mode: batch-norm's running statistics

    def forward(self, face, eye=None, nose=None, mouth=None):
        given = dict(zip(("face", *ROI_NAMES), (face, eye, nose, mouth), strict=True))
        return logits(self.model, {k: given[k] for k in self.names}, self.tta)


def example_inputs(ck, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """Random normalised-range inputs at ``ck``'s sizes."""
    gen = torch.Generator().manual_seed(seed)
    sizes = ck.sizes
    return {k: torch.randn(batch, 3, sizes[k], sizes[k], generator=gen) for k in input_names(ck)}


def export_onnx(module: nn.Module, inputs: dict, names: list[str], path: Path) -> None:
    """Write ``module`` (called with ``inputs`` as keywords) as an ONNX graph with a dynamic
    batch axis to ``path``; ``names``: its outputs."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise FerError("ONNX export needs: pip install 'fer-roi-fusion[export]'") from None
    batch = torch.export.Dim("batch", min=1, max=4096)
    shapes = {k: {0: batch} for k in inputs}
    with torch.no_grad(), warnings.catch_warnings():
        # every input's batch axis is the one Dim "batch"; torch notes that it keeps one name
        warnings.filterwarnings("ignore", "# The axis name: batch will not be used", UserWarning)
        program = torch.onnx.export(
            module,
            (),
            kwargs=inputs,
            input_names=list(inputs),
            output_names=names,
            dynamic_shapes=shapes,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    program.save(str(path))


def export_checkpoint(ck, path: Path) -> None:
    """Export ``ck``'s network (under its test-time views) to ``path``, atomically, and keep it
    only if its logits agree with eager mode's within :data:`TOLERANCE`."""
    print(f"{ck.path}: exporting its graph for onnxruntime once, into {path}", file=sys.stderr)
    module = Network(ck.model.cpu(), input_names(ck), ck.tta)
    with StagedFile(path) as staged:
        export_graph(module, example_inputs(ck, 2, 0), staged.tmp)
        diff = parity(module, staged.tmp, example_inputs(ck, 3, 1))
        if diff > TOLERANCE:
            raise FerError(f"{ck.path}: its ONNX graph differs from eager mode by {diff:.2e}")


def export_graph(module: nn.Module, inputs: dict, path: Path) -> None:
    """torch's TorchScript-based exporter where it still works (a few seconds; torch deprecates
    it), else :func:`export_onnx` (torch.export's: ten times as long). The parity check after
    either is what vouches for the graph."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module,
                (),
                str(path),
                kwargs=inputs,
                input_names=list(inputs),
                output_names=["logits"],
                dynamic_axes={k: {0: "batch"} for k in inputs},
                dynamo=False,
            )
        return
    except Exception:  # a torch without it, or a model it cannot trace: the other exporter
        pass
    export_onnx(module, inputs, ["logits"], path)


def parity(module: nn.Module, path: Path, inputs: dict) -> float:
    """Largest |logit| difference between ``module`` (eager) and the ONNX file on ``inputs``."""
    import onnxruntime as ort

    with torch.no_grad():
        eager = module(**inputs)
    eager = eager if isinstance(eager, tuple) else (eager,)
    graph = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = graph.run(None, {k: v.numpy() for k, v in inputs.items()})
    return float(max(abs(a.numpy() - b).max() for a, b in zip(eager, got, strict=True)))
