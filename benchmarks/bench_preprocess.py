"""Preprocessing throughput and ROI coverage for a folder of images, optionally against the
reference implementation's algorithm run on the same images.

    python benchmarks/bench_preprocess.py ../shared/data/ckplus48 --detector none --workers 1 2
    python benchmarks/bench_preprocess.py ../shared/data/fer2013/test --limit 656 --reference

For each ``--workers`` value it runs the same code as ``fer prepare`` (decode → detect → align →
ROI crops, pool start-up included, no disk output) and prints faces/s, ROI coverage and the status
counts, and faces/s with start-up: the loop's time plus what a fresh ``fer prepare`` process spends
importing its modules before the first image (median of 3 fresh interpreters, timed from after
``import numpy``, which the reference needs too).

``--reference`` also runs the reference's algorithm in one process, as
``get_roi/face_alignment.py`` + ``face_roi.py`` do it (dlib HOG detector upsample 1 → 68 points →
``get_face_chips`` 224 → detector again on the chip, upsample 0 → landmarks of the last face →
unclamped numpy slices), minus its disk writes (so its speed here is an upper bound), with its
start-up (``import dlib`` and its two models, timed the same way, and counted twice: the two
scripts each load them), and compares the ROI boxes where both succeed: mean IoU per ROI and the
share of boxes within 2 px. The last line is the ratio, with start-up and of the loops alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer.contracts import ROI_NAMES  # noqa: E402
from fer.data.io import UnreadableImage, load_image  # noqa: E402
from fer.preprocess.align import predictor_path  # noqa: E402
from fer.preprocess.mtcnn import parse_min_face  # noqa: E402
from fer.preprocess.pipeline import Outputs, Settings, close_outputs  # noqa: E402
from fer.preprocess.prepare import iter_records  # noqa: E402
from fer.preprocess.rois import parse_boxes, reference_boxes  # noqa: E402

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
# what a fresh process does before its first image: `fer prepare` (the CLI and the verb's module,
# whose workers fork from it), and the reference's scripts (dlib and its two models)
FER_STARTUP = "import fer.cli, fer.preprocess.prepare"
REFERENCE_STARTUP = (
    "import dlib; dlib.get_frontal_face_detector(); dlib.shape_predictor({predictor!r})"
)


def startup_seconds(code: str, repeats: int = 3) -> float:
    """Median seconds ``code`` takes in a fresh interpreter, timed from after ``import numpy``."""
    timed = f"import time, numpy; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    root = str(Path(__file__).resolve().parents[1])
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", timed], capture_output=True, text=True, check=True, cwd=root
            ).stdout
        )
        for _ in range(repeats)
    ]
    return statistics.median(runs)


def list_images(folder: Path, limit: int | None) -> list[str]:
    """Image paths under ``folder`` (relative, sorted), thinned evenly to ``limit``."""
    files = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if limit and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its reaped children."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def make_portraits(src: Path, dst: Path, n: int) -> Path:
    """JAFFE-like 256x256 grey TIFF portraits: ``n`` faces of ``src`` (e.g. CK+48) enlarged to
    150 px and set in the middle of a shaded, noisy background, as JAFFE's faces are."""
    from PIL import Image

    dst.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shade = np.linspace(70, 170, 256)[:, None] * np.ones((1, 256))
    for k, rel in enumerate(list_images(src, n)):
        face = Image.fromarray(load_image(src, rel)).convert("L").resize((150, 150), Image.BICUBIC)
        canvas = shade + rng.normal(0, 4, (256, 256))
        canvas[40:190, 53:203] = np.asarray(face, float)
        Image.fromarray(canvas.clip(0, 255).astype(np.uint8), "L").save(dst / f"P{k:04d}.tiff")
    return dst


def run_ours(folder: Path, files: list[str], settings: Settings, workers: int, batch: int):
    """Time the prepare pipeline, arrays written to a temporary folder; returns (seconds,
    records, cpu seconds)."""
    import tempfile

    rows = [{"path": f} for f in files]
    with tempfile.TemporaryDirectory(prefix="fer-bench-") as out:
        start, cpu = time.perf_counter(), cpu_seconds()
        Outputs.create(Path(out), len(rows), settings)
        chunks = iter_records(rows, settings, workers, batch, out)
        records = [r for chunk in chunks for r in chunk]
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        close_outputs(out)
    return seconds, records, cpu


def run_reference(folder: Path, files: list[str]):
    """The reference algorithm (one process): (seconds, statuses, boxes or None per image, cpu
    seconds). ``seconds`` is its loop alone, like the published scripts' figure; its start-up
    (dlib's import and models) is timed apart, in fresh processes (``REFERENCE_STARTUP``)."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(predictor_path()))
    statuses, boxes = [], []
    start, cpu = time.perf_counter(), cpu_seconds()
    for rel in files:
        try:
            rgb = load_image(folder, rel)
        except UnreadableImage:
            statuses.append("unreadable"), boxes.append(None)
            continue
        faces = detector(rgb, 1)
        if len(faces) == 0:
            statuses.append("no_face"), boxes.append(None)
            continue
        shapes = dlib.full_object_detections()
        for face in faces:
            shapes.append(predictor(rgb, face))
        chip = dlib.get_face_chips(rgb, shapes, size=224)[-1]  # the last chip overwrote the others
        found = detector(chip, 0)
        if len(found) == 0:
            statuses.append("error"), boxes.append(None)
            continue
        shape = predictor(chip, found[-1])
        pts = np.array([(p.x, p.y) for p in shape.parts()], float)
        ref = reference_boxes(pts, 224)
        crops = [chip[y1:y2, x1:x2] for x1, y1, x2, y2 in ref]  # unclamped, as the reference
        ok = all(c.size > 0 for c in crops)
        statuses.append("ok" if ok else "error"), boxes.append(ref if ok else None)
    return time.perf_counter() - start, statuses, boxes, cpu_seconds() - cpu


def iou(a, b) -> float:
    """Intersection over union of two x1,y1,x2,y2 boxes (end exclusive)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def compare(ours: list[dict], ref_boxes: list) -> dict:
    """Mean IoU and share of boxes within 2 px (every side), per ROI, where both have ROIs."""
    per = {name: [] for name in ROI_NAMES}
    close = {name: [] for name in ROI_NAMES}
    for record, ref in zip(ours, ref_boxes, strict=True):
        mine = parse_boxes(record["roi_boxes"])
        if not mine or ref is None:
            continue
        for name, a, b in zip(ROI_NAMES, mine, ref, strict=True):
            per[name].append(iou(a, b))
            close[name].append(max(abs(u - v) for u, v in zip(a, b, strict=True)) <= 2)
    out = {"n_both": len(per["eye"])}
    for name in ROI_NAMES:
        out[f"{name}_mean_iou"] = round(float(np.mean(per[name])), 4) if per[name] else None
        out[f"{name}_within_2px"] = round(float(np.mean(close[name])), 4) if close[name] else None
    return out


def result_line(run: str, seconds: float, cpu: float, statuses: list[str], **extra) -> str:
    """One JSON line: faces/s (wall), faces per CPU-second, ROI coverage, status counts."""
    n, counts = len(statuses), Counter(statuses)
    line = {
        "run": run,
        **extra,
        "n": n,
        "seconds": round(seconds, 2),
        "faces_per_s": round(n / seconds, 1),
        "faces_per_cpu_s": round(n / max(cpu, 1e-9), 1),
        "roi_coverage": round(counts["ok"] / n, 4),
        "statuses": dict(counts),
    }
    return json.dumps(line)


def main(argv=None) -> int:
    """Print one JSON line per run: faces/s, ROI coverage, statuses (and the reference's)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="folder of images (searched recursively, read only)")
    p.add_argument("--limit", type=int, default=None, help="use at most N images, evenly spread")
    p.add_argument("--detector", default="none", help="mtcnn | dlib | none (default none)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    p.add_argument("--batch-size", type=int, default=32, help="images per chunk")
    p.add_argument("--chip-size", type=int, default=224, help="stored face chip side")
    p.add_argument(
        "--min-face", type=parse_min_face, default="auto", help="mtcnn's smallest face (as prepare)"
    )
    p.add_argument("--reference", action="store_true", help="also run the reference algorithm")
    p.add_argument(
        "--portraits",
        type=int,
        default=0,
        help="benchmark N JAFFE-like 256x256 grey portraits made from FOLDER's faces",
    )
    args = p.parse_args(argv)
    if args.portraits:
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="fer-portraits-"))
        args.folder = make_portraits(args.folder, tmp, args.portraits)
    files = list_images(args.folder, args.limit)
    if not files:
        p.error(f"{args.folder}: no images found")
    settings = Settings(
        str(args.folder), args.detector, chip_size=args.chip_size, min_face=args.min_face
    )
    fer_startup = startup_seconds(FER_STARTUP)
    last = None
    for workers in args.workers:
        seconds, records, cpu = run_ours(args.folder, files, settings, workers, args.batch_size)
        statuses = [r["status"] for r in records]
        extra = {"detector": args.detector, "workers": workers}
        extra |= {"min_face": args.min_face} if args.detector == "mtcnn" else {}
        extra |= {
            "startup_s": round(fer_startup, 2),
            "faces_per_s_with_startup": round(len(files) / (seconds + fer_startup), 1),
        }
        print(result_line("fer", seconds, cpu, statuses, **extra))
        last = records, seconds
    if args.reference:
        seconds, statuses, boxes, cpu = run_reference(args.folder, files)
        # the reference's two scripts each import dlib and load the 68-point model
        startup = 2 * startup_seconds(REFERENCE_STARTUP.format(predictor=str(predictor_path())))
        extra = {
            "startup_s": round(startup, 2),
            "faces_per_s_with_startup": round(len(files) / (seconds + startup), 1),
        }
        print(result_line("reference", seconds, cpu, statuses, detector="dlib", workers=1, **extra))
        if last is not None:
            records, ours = last
            print(json.dumps({"run": "box_agreement", **compare(records, boxes)}), flush=True)
            ratio = {
                "run": "ratio",
                "workers": args.workers[-1],
                "with_startup": round((seconds + startup) / (ours + fer_startup), 2),
                "loops_only": round(seconds / ours, 2),
            }
            print(json.dumps(ratio), flush=True)
    if args.portraits:
        shutil.rmtree(args.folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
