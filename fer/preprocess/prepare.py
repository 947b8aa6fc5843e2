"""``fer prepare``: manifest → prepared arrays (aligned faces, landmarks, eye/nose/mouth crops).

Output layout (docs/design.md, "Prepared data"): index.csv, faces.npy, eye.npy, nose.npy,
mouth.npy, landmarks.npy, optional original.npy, params.json, summary.json, contact_sheet.png.
Arrays are created with ``np.lib.format.open_memmap`` and filled chunk by chunk (by the worker
processes, in place) in a temporary folder that is renamed into place at the end: a failed run
leaves no partial output.
Rerunning with the same manifest and parameters does nothing (``--force`` redoes it).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from fer import __version__, cliargs
from fer.atomic import remove_stale, require_space, staged_folder
from fer.contracts import (
    EXCLUDED,
    MANIFEST_SUMMARY,
    PREPARE_COLUMNS,
    PREPARED_FILES,
    STATUSES,
)
from fer.data.io import MAX_PIXELS, reason_code
from fer.data.manifest import read_manifest
from fer.errors import FerError
from fer.paths import writable_out
from fer.prepared import digests
from fer.preprocess.align import cache_predictors
from fer.preprocess.contact import write_contact_sheet
from fer.preprocess.detect import DETECTORS
from fer.preprocess.mtcnn import parse_min_face
from fer.preprocess.pipeline import (
    Outputs,
    Settings,
    close_outputs,
    init_worker,
    process_into,
    start_worker,
)
from fer.progress import say
from fer.provenance import resolve_device as resolve_torch_device

SAY_EVERY_S = 60  # seconds between progress lines on the terminal


def get_args_parser() -> argparse.ArgumentParser:
    """Flags of ``fer prepare``."""
    p = cliargs.parser(
        "fer prepare",
        "Detect, align and crop: manifest -> prepared arrays (aligned face chips, 68 landmarks, "
        "eye / nose / mouth crops) with a status per image; a rerun with the same manifest and "
        "settings does nothing.",
    )
    manifest = "resources/DATASET/manifest.csv (manifest.summary.json beside it)"
    p.add_argument("--manifest", required=True, type=Path, help=manifest)
    root = "the data set's folder; manifest paths are relative to it (only read)"
    p.add_argument("--root", required=True, type=Path, help=root)
    p.add_argument("--out", required=True, type=Path, help="output folder, resources/X/prepared")
    detector = (
        "face detector: mtcnn (in the wild), dlib (HOG, the reference's), none (the whole "
        "frame is the face: cropped sets), given (the manifest's boxes / landmarks)"
    )
    p.add_argument("--detector", default="mtcnn", choices=DETECTORS, help=detector)
    min_face = (
        "mtcnn's smallest face: auto (a tenth of the frame's short side, at least 20 px), "
        "pixels (e.g. 20, facenet-pytorch's default), or a share of the short side (e.g. 0.15)"
    )
    p.add_argument("--min-face", type=parse_min_face, default="auto", help=min_face)
    cliargs.add_stored_sizes(p)
    padding = "dlib.get_face_chip padding"
    p.add_argument("--padding", type=cliargs.number(0), default=0.25, help=padding)
    workers = "processes for decode + landmarks (1 = in this process)"
    p.add_argument("--workers", type=cliargs.integer(1), default=os.cpu_count() or 1, help=workers)
    where = "where MTCNN runs (auto: cuda when visible)"
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help=where)
    chunk = "images per chunk at most (one pool task, fewer to keep every worker busy; MTCNN "
    chunk += "batches equal-size images in it)"
    p.add_argument("--batch-size", type=cliargs.integer(1), default=32, help=chunk)
    limit = "images of more pixels are `unreadable` (counted, with their size), not decoded"
    p.add_argument("--max-pixels", type=cliargs.integer(1), default=MAX_PIXELS, help=limit)
    original = "also write original.npy: the whole frame resized to --chip-size"
    p.add_argument("--keep-original", action="store_true", help=original)
    sheet = "number of chips on contact_sheet.png"
    p.add_argument("--contact-sheet-n", type=cliargs.integer(0), default=48, help=sheet)
    force = "recompute even if --out already holds this manifest with these settings"
    p.add_argument("--force", action="store_true", help=force)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``fer prepare``; returns the exit status."""
    args = get_args_parser().parse_args(argv)
    manifest = [args.manifest, args.manifest.with_name(MANIFEST_SUMMARY)]
    writable_out(args.out, inputs=manifest, raw_roots=[args.root])
    remove_stale(args.out)  # partial folders of runs that were killed
    rows, manifest_summary, digest = read_manifest(args.manifest)
    settings = Settings(
        str(args.root),
        args.detector,
        args.chip_size,
        args.crop_size,
        args.padding,
        resolve_device(args.device, args.detector),
        args.keep_original,
        args.max_pixels,
        min_face=args.min_face,
    )
    params = make_params(settings, digest)
    if not args.force and is_up_to_date(args.out, params):
        print(f"{args.out}: up to date ({len(rows)} images)", file=sys.stderr)
        return 0
    if not Path(args.root).is_dir():
        raise FerError(
            f"{args.root}: data root does not exist (expected the folder the manifest "
            "paths are relative to)"
        )
    summary = prepare(
        rows,
        manifest_summary,
        settings,
        args.out,
        params,
        workers=args.workers,
        batch_size=args.batch_size,
        contact_n=args.contact_sheet_n,
    )
    counts = summary["counts_by_status"]
    print(
        f"{args.out}: {len(rows)} images, "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"; {summary['faces_per_s']:.1f} faces/s",
        file=sys.stderr,
    )
    return 0


def resolve_device(device: str, detector: str) -> str:
    """``auto`` → ``cuda`` when MTCNN runs and a GPU is visible, else ``cpu``; ``cuda`` without a
    GPU is a :class:`FerError`. Only MTCNN uses the device (dlib runs on the CPU)."""
    if detector != "mtcnn" or device == "cpu":
        return "cpu"
    if device == "auto" and not gpu_device_nodes():
        return "cpu"  # what torch would say, without its second of import
    return resolve_torch_device(device).type


def gpu_device_nodes() -> bool:
    """Whether a GPU could be visible: on Linux, an NVIDIA (``/dev/nvidia0`` …) or ROCm
    (``/dev/kfd``) device node exists, without which torch sees no GPU; elsewhere, True."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/kfd")


def make_params(settings: Settings, manifest_sha256: str) -> dict:
    """params.json: what decides the prepared content (a change means recompute)."""
    return {
        "chip_size": settings.chip_size,
        "crop_size": settings.crop_size,
        "padding": settings.padding,
        "detector": settings.detector,
        "version": __version__,
        "keep_original": settings.keep_original,
        "max_pixels": settings.max_pixels,
        "manifest_sha256": manifest_sha256,
        **({"min_face": settings.min_face} if settings.detector == "mtcnn" else {}),
    }


def is_up_to_date(out: Path, params: dict) -> bool:
    """True when ``out`` is a complete prepared folder made with exactly ``params``."""
    try:
        old = json.loads((Path(out) / "params.json").read_text())
    except (OSError, ValueError):
        return False
    return old == params and all((Path(out) / n).is_file() for n in PREPARED_FILES)


def iter_records(rows: list[dict], settings: Settings, workers: int, batch_size: int, folder):
    """Process ``rows`` into the :class:`Outputs` already created in ``folder``; yields each
    chunk's records in row order. Workers write their rows straight into the memory-mapped
    arrays, so no image array crosses a process boundary.

    On the CPU the detector and the landmark models are loaded once, here, and the forked
    workers inherit them; with CUDA each spawned worker loads its own. A worker that dies (killed,
    out of memory) stops the run with one line, never a hang.
    """
    size = chunk_size(len(rows), workers, batch_size)
    tasks = [(str(folder), i, rows[i : i + size]) for i in range(0, len(rows), size)]
    workers = min(workers, len(tasks))
    cuda = settings.device.startswith("cuda")
    if not cuda or workers <= 1:
        init_worker(settings)
    else:  # each spawned worker loads its own models: decoded into the cache once, here
        cache_predictors()
    if workers <= 1:
        yield from (process_into(t) for t in tasks)
        return
    pool = ProcessPoolExecutor(
        workers,
        mp_context=mp.get_context("spawn" if cuda else "fork"),
        initializer=start_worker,
        initargs=(settings if cuda else None,),
    )
    try:
        yield from pool.map(process_into, tasks)
    except BrokenProcessPool:
        raise FerError(
            f"{folder}: a preprocessing worker died (killed, or out of memory); nothing was "
            "written: run again, or with fewer --workers"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def chunk_size(n: int, workers: int, batch_size: int) -> int:
    """Rows per task: ``batch_size``, or fewer when that would leave workers unevenly loaded (at
    least 4 tasks per worker: 213 rows in chunks of 32 gave one of 2 workers a third more)."""
    if workers <= 1:
        return batch_size
    return max(1, min(batch_size, -(-n // (4 * workers))))


def prepare(
    rows: list[dict[str, str]],
    manifest_summary: dict,
    settings: Settings,
    out: Path,
    params: dict,
    workers: int = 1,
    batch_size: int = 32,
    contact_n: int = 48,
) -> dict:
    """Process every manifest row into ``out`` (atomically: a staged folder swapped in at the
    end, nothing left on failure) and return the summary written."""
    require_space(out, Outputs.nbytes(len(rows), settings))  # before hours of work, not after
    with staged_folder(out) as tmp:
        return _fill(tmp, rows, manifest_summary, settings, params, workers, batch_size, contact_n)


def _fill(tmp: Path, rows, manifest_summary, settings, params, workers, batch_size, contact_n):
    from tqdm import tqdm

    arrays = Outputs.create(tmp, len(rows), settings)
    records: list[dict] = []
    start_time = time.perf_counter()
    bar = tqdm(
        total=len(rows),
        unit="img",
        file=sys.stderr,
        disable=len(rows) < 500,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
        desc="prepare",
    )
    said = start_time
    for chunk_records in iter_records(rows, settings, workers, batch_size, tmp):
        records.extend(chunk_records)
        bar.update(len(chunk_records))
        if time.perf_counter() - said > SAY_EVERY_S:  # a line a minute on long runs
            said, done = time.perf_counter(), len(records)
            rate = done / (said - start_time)
            left = (len(rows) - done) / rate if rate else float("nan")
            say(f"prepare: {done}/{len(rows)} images, {rate:.1f}/s, about {left / 60:.0f} min left")
    bar.close()
    wall = time.perf_counter() - start_time
    arrays.flush()
    close_outputs(tmp)
    # every manifest column, then the four prepare adds
    index = [row | {c: r[c] for c in PREPARE_COLUMNS} for row, r in zip(rows, records, strict=True)]
    write_index(tmp / "index.csv", index)
    statuses = [r["status"] for r in index]
    boxes = [r["roi_boxes"] for r in index]
    write_contact_sheet(tmp / "contact_sheet.png", arrays.faces, boxes, statuses, contact_n)
    summary = make_summary(index, records, manifest_summary, wall, workers, settings)
    summary["digests"] = digests(tmp)  # the content, for runs that must not resume across it
    (tmp / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def write_index(path: Path, index: list[dict]) -> None:
    """index.csv: a header, then a line per row (values as ``str`` gives them: True, 3), quoted
    where needed, as pandas' ``to_csv`` writes it."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(index[0])
        writer.writerows(row.values() for row in index)


def make_summary(
    index: list[dict],
    records: list[dict],
    manifest_summary: dict,
    wall: float,
    workers: int,
    settings: Settings,
) -> dict:
    """summary.json: counts per status, status × class and split × status, coverage, timings."""
    n = len(index)
    status = Counter(r["status"] for r in index)
    readable = n - sum(status[s] for s in EXCLUDED)
    by_class = {s: {c: 0 for c in manifest_summary["classes"]} for s in STATUSES}
    for r in index:
        by_class[r["status"]][r["label_name"]] = by_class[r["status"]].get(r["label_name"], 0) + 1
    by_split: dict[str, dict[str, int]] = {}
    for r in index:
        by_split.setdefault(r["split"], dict.fromkeys(STATUSES, 0))[r["status"]] += 1
    reasons = Counter(r["reason"] for r in records if r["status"] == "unreadable")
    rejected = Counter(reason_code(r["reason"]) for r in records if r["status"] == "rejected")
    return {
        "dataset": manifest_summary.get("dataset", ""),
        "adapter": manifest_summary.get("adapter", ""),
        "synthetic": bool(manifest_summary.get("synthetic", False)),
        "classes": list(manifest_summary["classes"]),
        "n_images": n,
        "n_with_roi": status["ok"],
        "roi_coverage": status["ok"] / readable if readable else 0.0,
        "roi_coverage_all": status["ok"] / n if n else 0.0,
        "n_multi_face": int(sum(1 for r in records if r["n_faces"] > 1)),
        "detector": settings.detector,
        "device": settings.device,
        "workers": workers,
        "wall_s": round(wall, 3),
        "faces_per_s": round(n / wall, 2) if wall > 0 else 0.0,
        "counts_by_status": {s: status[s] for s in STATUSES},
        "counts_by_status_class": by_class,
        "counts_by_split": by_split,
        "unreadable_reasons": dict(reasons.most_common(20)),
        "rejected_reasons": dict(sorted(rejected.items())),  # by rule: too_small, constant, …
    }
