"""``fer export``: a models folder's fused pair as one ONNX or TorchScript graph.

The graph takes the aligned face chip and the three ROI crops as float32 ``N×3×S×S`` RGB in
[0, 1] at the models' input sizes (the checkpoints' ``face_size`` / ``roi_size``; fer prepares
chips at ``preprocess.chip_size`` and resizes them with antialiased bilinear interpolation), does
the checkpoints' normalisation itself (ImageNet's) and returns three logit sets: ``global``,
``roi`` and ``fused`` (:meth:`fer.fusion.Fusion.combine` with fusion.json's weights, baked in). A
folder with one model exports that model alone (inputs it uses, one output). Beside the graph,
``<out>.json`` records the inputs, outputs, classes, weights and preprocessing a caller needs.
A checkpoint trained with ``tta: flip`` is exported with it: the graph averages the logits of the
inputs and their mirror images, as ``fer infer`` and ``fer predict`` do.

ONNX needs the ``export`` extra (onnx, onnxscript; onnxruntime for the parity check).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from fer import cliargs
from fer.atomic import StagedFile, write_json
from fer.contracts import ROI_NAMES
from fer.errors import FerError, FerWarning
from fer.models.exporter import TOLERANCE, export_onnx
from fer.models.exporter import parity as onnx_parity
from fer.models.transforms import Normalisation
from fer.models.tta import logits
from fer.paths import writable_out
from fer.predict.models import FUSION_FILE, ModelSet, load_models

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


class FusedPair(nn.Module):
    """Both networks and their fusion as one module: ``(face, eye, nose, mouth)`` floats in [0, 1]
    → ``(z_global, z_roi, z_fused)``; one network alone → its logits."""

    def __init__(self, models: ModelSet, norm: Normalisation):
        super().__init__()
        g, r = models.global_ck, models.roi_ck
        self.global_net = g.model.eval() if g is not None else None
        self.roi_net = r.model.eval() if r is not None else None
        self.fusion = models.fusion
        self.tta = (g.tta if g is not None else "none", r.tta if r is not None else "none")
        mean, std = (
            torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in (norm.mean, norm.std)
        )
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, face, eye=None, nose=None, mouth=None):
        face = (face - self.mean) / self.std
        outputs = []
        if self.global_net is not None:
            outputs.append(logits(self.global_net, {"face": face}, self.tta[0]))
        if self.roi_net is not None:
            crops = [(x - self.mean) / self.std for x in (eye, nose, mouth)]
            inputs = {"face": face, "eye": crops[0], "nose": crops[1], "mouth": crops[2]}
            outputs.append(logits(self.roi_net, inputs, self.tta[1]))
        if len(outputs) == 2:
            outputs.append(self.fusion.combine(outputs[1], outputs[0]))
        return tuple(outputs)


def graph_inputs(models: ModelSet, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Example inputs of the graph (random, in [0, 1]) at the models' sizes."""
    sizes = {
        (int(c.meta["face_size"]), int(c.meta["roi_size"])) for c in models.checkpoints.values()
    }
    if len(sizes) > 1:
        raise FerError(
            f"the two models take inputs of different sizes {sorted(sizes)}: one graph takes one "
            "face chip; export each model from a folder of its own"
        )
    f, r = sizes.pop()
    gen = torch.Generator().manual_seed(seed)
    inputs = {"face": torch.rand(batch, 3, f, f, generator=gen)}
    if models.roi_ck is not None:
        inputs.update({k: torch.rand(batch, 3, r, r, generator=gen) for k in ROI_NAMES})
    return inputs


def output_names(models: ModelSet) -> list[str]:
    """``global``, ``roi``, ``fused``: those the graph returns."""
    names = list(models.checkpoints)
    return [*names, "fused"] if len(names) == 2 else names


def export(models: ModelSet, fmt: str, out: Path) -> dict:
    """Write the graph of ``models`` to ``out`` in ``fmt`` (onnx / torchscript) and its
    description to ``<out>.json``; check it against eager mode; returns the description."""
    norms = {ck.normalisation for ck in models.checkpoints.values()}
    if len(norms) > 1:
        raise FerError(
            f"the two models were trained with different normalisations "
            f"{[n.to_meta() for n in norms]}: one graph normalises its inputs once; export each "
            "model from a folder of its own"
        )
    if fmt not in FORMATS:
        raise FerError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if (warning := models.data_warning()) is not None:
        warnings.warn(warning, FerWarning, stacklevel=2)
    module = FusedPair(models, norms.pop()).eval()
    inputs = graph_inputs(models)
    names = output_names(models)
    out = Path(out)
    with StagedFile(out) as staged:
        if fmt == "onnx":
            export_onnx(module, inputs, names, staged.tmp)
        else:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
                traced = torch.jit.trace(module, tuple(inputs.values()), check_trace=False)
                torch.jit.save(traced, str(staged.tmp))
        diff = parity(module, staged.tmp, fmt, graph_inputs(models, batch=3, seed=1))
        if diff > TOLERANCE:
            raise FerError(f"{out}: the exported graph differs from eager mode by {diff:.2e}")
    spec = {
        "format": fmt,
        "file": out.name,
        "inputs": {k: ["N", *v.shape[1:]] for k, v in inputs.items()},
        "input_range": "float32 RGB in [0, 1], normalised inside the graph",
        "normalisation": {
            "mean": list(module.mean.flatten().tolist()),
            "std": list(module.std.flatten().tolist()),
        },
        "outputs": names,
        "classes": models.classes,
        "fusion": models.fusion.to_dict(),
        "fusion_source": models.fusion_source,
        "preprocess": models.preprocess,
        "model_data": models.model_data,
        "tta": {k: c.tta for k, c in models.checkpoints.items()},
        "checkpoints": {k: str(c.path) for k, c in models.checkpoints.items()},
        "max_abs_diff_vs_eager": diff,
    }
    write_json(out.with_name(out.name + ".json"), spec, indent=1)
    return spec


def parity(module: nn.Module, path: Path, fmt: str, inputs: dict) -> float:
    """Largest |logit| difference between ``module`` (eager) and the exported file on ``inputs``."""
    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise FerError("the ONNX parity check needs onnxruntime (the export extra)") from None
        return onnx_parity(module, path, inputs)
    with torch.no_grad():
        eager = [z.numpy() for z in module(**inputs)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path))
    with torch.no_grad():
        got = [z.numpy() for z in loaded(*inputs.values())]
    return float(max(abs(a - b).max() for a, b in zip(eager, got, strict=True)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fer export``."""
    p = cliargs.parser(
        "fer export",
        "Export a models folder's fused pair (both networks and their fusion) as one ONNX or "
        "TorchScript graph: inputs face, eye, nose, mouth (float32 N×3×S×S RGB in [0, 1]), "
        "outputs global, roi and fused logits; checked against eager mode before it is kept.",
    )
    p.add_argument("--models", required=True, type=Path, help="models/<dataset>/")
    p.add_argument("--format", required=True, choices=list(FORMATS), help="graph format")
    p.add_argument("--fold", type=cliargs.integer(0), help="k-fold models: which fold's pair")
    where = "file to write, .onnx or .pt (default: MODELS/fused.onnx, MODELS/fused.torchscript.pt)"
    p.add_argument("--out", type=Path, help=where)
    args = p.parse_args(argv)
    models = load_models(args.models, fold=args.fold)
    stem = "fused" if len(models.checkpoints) == 2 else next(iter(models.checkpoints))
    out = args.out or args.models / f"{stem}{FORMATS[args.format]}"
    suffix = "." + FORMATS[args.format].rsplit(".", 1)[1]  # onnxruntime reads by the suffix
    if out.suffix != suffix:
        raise FerError(f"--out {out}: {args.format} graphs are written to {suffix} files")
    read = [ck.path for ck in models.checkpoints.values()] + [args.models / FUSION_FILE]
    for path in (out, out.with_name(out.name + ".json")):  # the graph and its description
        writable_out(path, inputs=read)
    spec = export(models, args.format, out)
    print(
        f"wrote {out} ({args.format}; outputs {', '.join(spec['outputs'])}; max |logit| "
        f"difference from eager mode {spec['max_abs_diff_vs_eager']:.1e}) and {out}.json",
        file=sys.stderr,
    )
    return 0
