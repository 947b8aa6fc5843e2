"""``fer predict``: expressions of the faces in images, folders and videos, as a table."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from fer import cliargs
from fer.contracts import BACKENDS
from fer.errors import FerError
from fer.paths import real, writable_out
from fer.predict.sources import Sampling
from fer.preprocess.detect import DETECTORS

CROP_SIDE = 96  # a picture this small is likely a face crop already (FER2013: 48, CK+48: 48)

EPILOG = """Statuses: ok (a face and its ROIs: every arch), no_roi (a face without usable
ROIs: global, and fused = global), no_face (no face found: global on the whole frame, as
evaluation scores such pictures), unreadable (the reason says why), rejected (too small, too
elongated or constant: docs/safety.md). Columns: {columns}, then per arch ARCH_label and
ARCH_p_CLASS.

Examples:
  fer predict photo.jpg clips/ --models models/rafdb --out faces.csv
  find shots -name '*.jpg' | fer predict - --models models/rafdb --out faces.parquet
  fer predict talk.mp4 --fps 5 --all-faces --models models/rafdb --annotate annotated/"""


def get_args_parser() -> argparse.ArgumentParser:
    """The ``fer predict`` command line."""
    from fer.predict.core import FIXED_COLUMNS

    p = cliargs.parser(
        "fer predict",
        "Predict facial expressions in images, folders (recursive) and videos with a trained "
        "pair of models: every picture is prepared as the models' training data was (the "
        "detector, alignment and ROI crops their checkpoints record) and scored by the Global "
        "Net, the Global-ROI Net and their fusion. One row per face; an unreadable file is a row "
        "with its reason.",
        EPILOG.format(columns=", ".join(FIXED_COLUMNS)),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image, folder, video, or - (stdin)")
    models = "models folder: global.pt and / or roi.pt, fusion.json (models/<dataset>/)"
    p.add_argument("--models", type=Path, help=models)
    for kind in ("global", "roi"):
        p.add_argument(f"--{kind}-ckpt", type=Path, help=f"a {kind} checkpoint (without --models)")
    p.add_argument("--fold", type=cliargs.integer(0), help="k-fold models: which fold's pair")
    fusion = "fused logits' weights roi=W,global=W (default: the folder's fusion.json)"
    cliargs.add_fusion_weights(p, None, fusion)
    out = "table to write: .csv, .jsonl or .parquet (default: CSV on stdout)"
    p.add_argument("--out", type=Path, help=out)
    p.add_argument("--annotate", type=Path, metavar="DIR", help="write drawn copies into DIR")
    p.add_argument("--all-faces", action="store_true", help="a row per face, not the largest only")
    frames = p.add_mutually_exclusive_group()
    frames.add_argument(
        "--every", type=cliargs.integer(1), default=1, help="video: every Nth frame"
    )
    frames.add_argument("--fps", type=cliargs.number(1e-3), help="video: frames at this rate")
    detector = "replace the checkpoints' detector (needed for models trained on given boxes)"
    p.add_argument("--detector", choices=[d for d in DETECTORS if d != "given"], help=detector)
    limit = "pictures of more pixels are unreadable (default: the checkpoints' limit)"
    p.add_argument("--max-pixels", type=cliargs.integer(1), help=limit)
    batch = "frames per batch (detection, alignment and each model run once per batch)"
    p.add_argument("--batch-size", type=cliargs.integer(1), default=32, help=batch)
    workers = (
        "processes that detect, align and crop the next batches while the networks score this "
        "one (0: all in this process; auto: one per CPU core, at most 4, none without a "
        "detector or with MTCNN on a GPU)"
    )
    p.add_argument("--workers", type=cliargs.integer_or_auto(0), default="auto", help=workers)
    backend = (
        "who runs the networks: eager (torch), onnx (each checkpoint's graph under "
        "onnxruntime, exported once into the cache, $FER_CACHE or ~/.cache/fer; the same "
        "logits within 1e-4, faster on a CPU in batches), auto (onnx on the CPU for a "
        "--batch-size of 16 or more where the export extra is installed, else eager)"
    )
    p.add_argument("--backend", choices=BACKENDS, default="auto", help=backend)
    cliargs.add_device(p)
    cliargs.add_threads(
        p, "CPU threads of the networks, torch's or onnxruntime's (default: theirs)"
    )
    cliargs.add_no_progress(p)
    return p


def check_outputs(args: argparse.Namespace) -> None:
    """``--out`` and ``--annotate`` never inside an input folder, never over an input or a
    model file (docs/safety.md, rule 2); a list on stdin is checked file by file as it is
    annotated (:class:`~fer.predict.annotate.Annotator`)."""
    given = [Path(p) for p in args.paths if p != "-"]
    folders = [p for p in given if p.is_dir()]
    files = [p for p in given if not p.is_dir()]
    models = [p for p in (args.global_ckpt, args.roi_ckpt) if p]
    if args.models is not None:
        models += [p for p in Path(args.models).glob("*") if p.suffix in (".pt", ".json")]
    if args.out is not None:
        writable_out(args.out, inputs=[*files, *models], raw_roots=folders)
    if args.annotate is not None:  # DIR/<file name>, DIR/<folder name>/<path under it>
        writable_out(
            args.annotate, inputs=[*files, *models], raw_roots=folders, what="--annotate",
            whole=False,
        )  # fmt: skip
        for source in given:
            if real(args.annotate) == real(source).parent:
                raise FerError(
                    f"--annotate {args.annotate}: the folder holding the input {source}; its "
                    "annotated copies would overwrite it — annotate into another folder"
                )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fer predict``; returns the exit status."""
    from fer.predict.core import Predictor
    from fer.predict.models import load_models
    from fer.predict.table import table_format

    args = get_args_parser().parse_args(argv)
    if args.models is None and not (args.global_ckpt or args.roi_ckpt):
        raise FerError("give --models DIR (or --global-ckpt / --roi-ckpt)")
    table_format(args.out)  # a bad --out stops before any model loads
    check_outputs(args)
    models = load_models(
        args.models,
        global_ckpt=args.global_ckpt,
        roi_ckpt=args.roi_ckpt,
        fold=args.fold,
        fusion=args.fusion_weights,
    )
    limit = args.max_pixels or int(models.preprocess.get("max_pixels", 100_000_000))
    predictor = Predictor(
        models,
        device=args.device,
        batch_size=args.batch_size,
        all_faces=args.all_faces,
        detector=args.detector,
        sampling=Sampling(args.every, args.fps, limit),
        progress=False if args.no_progress else None,
        workers=args.workers,
        backend=args.backend,
        threads=args.threads or None,
    )
    with predictor:
        return _run(args, models, predictor)


def _run(args: argparse.Namespace, models, predictor) -> int:
    """Write the table (and annotated copies) of ``args.paths``; report on stderr."""
    from fer.predict.annotate import Annotator
    from fer.predict.core import STATUSES
    from fer.predict.table import TableWriter

    print(models.describe(), file=sys.stderr)
    annotator = Annotator(args.annotate, predictor.archs[-1]) if args.annotate else None
    counts, sources, start = Counter(), set(), time.perf_counter()
    small_misses = 0  # no face found on a picture that may be a face crop already
    try:
        with TableWriter(args.out, predictor.columns) as table:
            for result in predictor.results(args.paths):
                table.write(result.rows)
                counts.update(row["status"] for row in result.rows)
                image = result.frame.image
                if image is not None and min(image.shape[:2]) <= CROP_SIDE:
                    small_misses += sum(row["status"] == "no_face" for row in result.rows)
                sources.add(result.frame.source)
                if annotator is not None:
                    annotator.add(result)
            if annotator is not None:
                annotator.close_video()
    except BaseException:
        if annotator is not None:
            annotator.discard()
        raise
    seconds, t = time.perf_counter() - start, predictor.timing
    tally = ", ".join(f"{k} {counts[k]}" for k in STATUSES)
    where = f" → {args.out}" if args.out else ""
    print(
        f"{table.rows} rows from {t.frames} frames of {len(sources)} inputs ({tally}) in "
        f"{seconds:.1f} s: decode {t.decode_s:.1f} s, preprocess {t.preprocess_s:.1f} s, "
        f"models {t.inference_s:.1f} s{where}",
        file=sys.stderr,
    )
    if annotator is not None:
        print(f"{len(annotator.written)} annotated files in {args.annotate}", file=sys.stderr)
    if predictor.detector != "none" and small_misses >= max(1, 0.05 * t.frames):
        print(
            f"note: no face found on {small_misses} pictures of at most {CROP_SIDE} px a side; "
            f"if they are face crops already (as FER2013's 48 px), --detector none takes each "
            "whole picture as the face",
            file=sys.stderr,
        )
    return 0
