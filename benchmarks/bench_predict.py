"""Speed and memory of ``fer predict`` (issue 17: batched ≥ 3× batch 1, peak memory on a 2,000-frame
video within 10 % of a 200-frame one; issue 31: ≥ 15 images/s at 224 / 90 on 2 cores, start-up).

1. Images/s of :class:`fer.Predictor` at batch 1 and batched, on ``--n-images`` pictures (crops of
   skimage's astronaut, one face each): overall, and preprocessing (detection, alignment, ROI
   crops: seconds of work, in the worker processes where there are some) and inference (both
   networks and the fusion) apart; with ``--workers`` and ``--backend`` as ``fer predict`` takes
   them; and the measuring process's peak resident memory after each (the networks run in it,
   the workers apart; torch is loaded there to make the models).
2. Start-up: ``fer predict`` on one picture in a fresh process, from process start to the table
   (the best of three), with the networks' ONNX graphs already cached as after any earlier
   batched call (then torch is not even imported: :mod:`fer.models.graphs`); and once with an
   empty cache, which pays for exporting them. ``--startup-only`` measures this part alone.
3. ``--before REV``: 1 and 2 again with git revision REV's code and its own copy of this script,
   same sizes, same machine; then the ratios after / before. Part 1 then runs in two fresh
   processes, REV's script and this one, one after the other.
4. On the CPU, what the batched inference rate means: both networks' GFLOPs per image, the
   GFLOPS reached, and the ceiling this machine's fp32 matrix product (torch's, 2048²) sets on
   the networks' images/s in exact fp32.
5. Peak resident memory of ``fer predict`` on a ``--short``-frame and a ``--long``-frame video
   (each run in a fresh process; its workers' included), and its frames/s.

The models are seeded, untrained networks of the sizes given (default the reference's 224 / 90;
speed does not depend on the weights), recording MTCNN preprocessing. Nothing is downloaded; the
ONNX graphs go to a temporary cache unless FER_CACHE is set.

    python benchmarks/bench_predict.py --before main~1 --skip-video   # CPU, reference sizes
    python benchmarks/bench_predict.py --device cuda --batch-size 64
    python benchmarks/bench_predict.py --face-size 48 --roi-size 24 --stored 112 48
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer import cliargs  # noqa: E402

PEAK = """
import resource, sys
from fer.cli import main
rc = main(sys.argv[1:])
peak = [resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print("PEAK_KB", sum(peak), file=sys.stderr)  # this process and its largest worker
sys.exit(rc)
"""


def make_models(folder: Path, args) -> None:
    import torch

    from fer.fusion import REFERENCE
    from fer.labels import SEVEN
    from fer.models import create_model, save_checkpoint
    from fer.predict.models import write_fusion

    torch.manual_seed(0)
    chip, crop = args.stored or (args.face_size, args.roi_size)
    pre = {"detector": "mtcnn", "padding": 0.25, "chip_size": chip, "crop_size": crop}
    for kind in ("global", "roi"):
        model = create_model(kind, 7, args.face_size, args.roi_size)
        save_checkpoint(folder / f"{kind}.pt", model, {"classes": list(SEVEN), "preprocess": pre})
    write_fusion(folder, REFERENCE, "benchmark")


def pictures(n: int, side: int = 256) -> list[np.ndarray]:
    """``n`` different side×side crops around the astronaut's face."""
    from PIL import Image
    from skimage.data import astronaut

    image = Image.fromarray(astronaut())
    out = []
    for k in range(n):
        dx, dy = (7 * k) % 80, (5 * k) % 40
        out.append(np.asarray(image.crop((80 + dx, dy, 80 + dx + side, dy + side))))
    return out


def write_video(path: Path, frames: list[np.ndarray], n: int, rate: int = 25) -> None:
    import av

    with av.open(str(path), "w") as out:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = out.add_stream(codec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(frames[k % len(frames)], format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def images_per_second(models: Path, images: list, batch: int, args) -> dict:
    from fer import Predictor
    from fer.predict.core import Timing

    options = {"device": args.device, "batch_size": batch, "progress": False}
    predictor = Predictor.from_dir(models, workers=args.workers, backend=args.backend, **options)
    predictor.predict(images[: min(len(images), max(batch, 2))])  # warm-up: allocator, kernels
    predictor.timing = Timing()  # the warm-up is not counted
    start = time.perf_counter()
    table = predictor.predict(images)
    seconds = time.perf_counter() - start
    predictor.close()
    t = predictor.timing
    return {
        "batch": batch,
        "images": len(images),
        "workers": predictor.finder.workers,
        "backend": predictor.backend,
        "faces_ok": int((table.status == "ok").sum()),
        "img_per_s": len(images) / seconds,
        "preprocess_img_per_s": len(images) / t.preprocess_s,
        "inference_img_per_s": len(images) / max(t.inference_s, 1e-9),
        "preprocess_s": t.preprocess_s,
        "inference_s": t.inference_s,
        "peak_rss_mb": peak_rss_mb(),  # this process's so far: the networks run here
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB; its workers not included)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory(models: Path, video: Path, args, work: Path) -> tuple[float, float]:
    """Peak RSS (MB; the process's own plus its largest worker's) and seconds of `fer predict`
    on ``video`` in a fresh process."""
    cmd = [sys.executable, "-c", PEAK, "predict", str(video), "--models", str(models)]
    cmd += ["--device", args.device, "--no-progress", "--out", str(work / f"{video.stem}.csv")]
    cmd += ["--batch-size", str(args.batch_size), "--backend", args.backend]
    cmd += ["--workers", str(args.workers)]
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if r.returncode:
        raise SystemExit(f"fer predict failed:\n{r.stderr[-2000:]}")
    kb = int(r.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return kb / 1024, seconds


def startup_seconds(
    models: Path, picture: Path, tree: Path, args, work: Path, cache: Path | None = None, n: int = 3
) -> float:
    """Wall seconds of ``fer predict`` on one picture in a fresh process, from ``tree``'s code:
    process start, imports, model loading and the table's first (only) row; the best of ``n``
    runs, with ``cache`` as FER_CACHE (default: the one the other parts use)."""
    cmd = [sys.executable, "-c", "import sys; from fer.cli import main; sys.exit(main())"]
    cmd += ["predict", str(picture), "--models", str(models), "--device", args.device]
    cmd += ["--no-progress", "--out", str(work / f"startup-{tree.name}.csv")]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if cache is not None:
        env["FER_CACHE"] = str(cache)
    best = math.inf
    for _ in range(n):  # the best of three: the first pays for a cold disk cache
        start = time.perf_counter()
        # run in the tree: ``python -c`` puts the working folder ahead of PYTHONPATH
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
        best = min(best, time.perf_counter() - start)
        if r.returncode:
            raise SystemExit(f"fer predict failed:\n{r.stderr[-2000:]}")
    return best


def checkout(rev: str, work: Path) -> Path:
    """The files of git revision ``rev`` of this repository, in a folder under ``work``."""
    root = Path(__file__).resolve().parents[1]
    tree = work / f"tree-{rev}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def run_images(label: str, tree: Path, args, work: Path) -> dict:
    """This benchmark's image figures as the copy of it in ``tree`` measures them, in a fresh
    process: with ``--before`` both sides run so (REV's, then this one), since a side measured in
    this process, which then holds its models, made the other side's batched inference look
    about 1.3x slower."""
    out = work / f"{label}.json"
    cmd = [sys.executable, str(tree / "benchmarks" / "bench_predict.py"), "--skip-video"]
    cmd += ["--face-size", str(args.face_size), "--roi-size", str(args.roi_size)]
    cmd += ["--batch-size", str(args.batch_size), "--n-images", str(args.n_images)]
    cmd += ["--device", args.device, "--json", str(out)]
    cmd += ["--stored", *map(str, args.stored)] if args.stored else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    script = (tree / "benchmarks" / "bench_predict.py").read_text()  # older ones lack flags
    if '"--workers"' in script:
        cmd += ["--workers", str(args.workers), "--backend", args.backend]  # as the run after
    if '"--skip-startup"' in script:
        cmd += ["--skip-startup"]  # this process times both sides' start-up
    print(f"{label}: {tree / 'benchmarks' / 'bench_predict.py'}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(cmd, check=True, env=env)
    return json.loads(out.read_text())


def ceiling(models: Path, batched: dict) -> dict:
    """What the batched inference rate means on this machine: both networks' GFLOPs per image
    (:func:`fer.models.gflops_per_image`, attention included), the GFLOPS that rate reaches,
    this machine's fp32 matrix product (``common.gemm_peak``, as bench_train.py's ceiling), and
    the networks' images/s were they to run at that product's rate (a ceiling for exact fp32 on
    the CPU: convolutions and attention are matrix products at best)."""
    import torch
    from common import gemm_peak

    from fer.models import gflops_per_image, load_checkpoint

    per = {
        kind: gflops_per_image(load_checkpoint(models / f"{kind}.pt")[0])
        for kind in ("global", "roi")
    }
    total = sum(per.values())
    peak = gemm_peak(torch.float32, "cpu")
    reached = batched["inference_img_per_s"] * total
    return {
        "gflops_per_image": per,
        "inference_gflops": reached,
        "sgemm_gflops": peak,
        "networks_ceiling_img_per_s": peak / total,
    }


def print_rate(name: str, f: dict) -> None:
    how = f" ({f['workers']} workers, {f['backend']})" if "workers" in f else ""
    print(
        f"{name}{how}: {f['img_per_s']:6.2f} img/s overall; preprocessing "
        f"{f['preprocess_img_per_s']:6.2f} img/s ({f['preprocess_s']:.1f} s), inference "
        f"{f['inference_img_per_s']:7.2f} img/s ({f['inference_s']:.1f} s); "
        f"{f['faces_ok']}/{f['images']} faces ok"
        + (f"; peak RSS {f['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in f else ""),
        flush=True,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cliargs.add_input_sizes(p, "side in pixels")
    stored = "sides of the prepared chip and ROI crops (default: the model input sizes)"
    p.add_argument("--stored", nargs=2, type=int, metavar=("CHIP", "CROP"), help=stored)
    p.add_argument("--batch-size", type=cliargs.integer(2), default=32, help="batched run")
    p.add_argument("--n-images", type=cliargs.integer(2), default=64, help="pictures timed")
    workers = "preprocessing worker processes (fer predict --workers)"
    p.add_argument("--workers", type=cliargs.integer_or_auto(0), default="auto", help=workers)
    backend = "who runs the networks (fer predict --backend)"
    p.add_argument("--backend", choices=("auto", "eager", "onnx"), default="auto", help=backend)
    p.add_argument("--short", type=cliargs.integer(1), default=200, help="frames, short video")
    p.add_argument("--long", type=cliargs.integer(1), default=2000, help="frames, long video")
    p.add_argument("--skip-video", action="store_true", help="only the images/s part")
    startup = "only the start-up part (with --before: its start-up too)"
    p.add_argument("--startup-only", action="store_true", help=startup)
    skip = "no start-up part (what --before's fresh processes are run with; it times both)"
    p.add_argument("--skip-startup", action="store_true", help=skip)
    before = "also measure git revision REV (its own bench_predict.py, same sizes) and print ratios"
    p.add_argument("--before", metavar="REV", help=before)
    cliargs.add_device(p)
    cliargs.add_threads(p)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if args.skip_startup and (args.startup_only or args.before):
        p.error("--skip-startup goes with neither --startup-only nor --before")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    args.device = "cpu" if args.device == "auto" else args.device
    print(
        f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads; "
        f"model inputs {args.face_size}/{args.roi_size}, chips {args.stored or 'same'}",
        flush=True,
    )
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("FER_CACHE", str(work / "cache"))  # graphs exported here, not kept
        models = work / "models"
        models.mkdir()
        make_models(models, args)
        images = pictures(args.n_images)
        here = Path(__file__).resolve().parents[1]
        tree = checkout(args.before, work) if args.before else None
        old: dict = {}  # REV's figures
        if args.before and not args.startup_only:
            old = run_images("before", tree, args, work)
            new = run_images("after", here, args, work)
            figures |= {k: v for k, v in new.items() if k.startswith(("batch", "ceiling"))}
        elif not args.startup_only:
            for batch in (1, args.batch_size):
                f = images_per_second(models, images, batch, args)
                figures[f"batch{batch}"] = f
                print_rate(f"batch {batch:>3}", f)
            one, many = figures["batch1"], figures[f"batch{args.batch_size}"]
            print(
                f"batched / batch 1: overall {many['img_per_s'] / one['img_per_s']:.2f}x, "
                f"preprocessing {many['preprocess_img_per_s'] / one['preprocess_img_per_s']:.2f}x, "
                f"inference {many['inference_img_per_s'] / one['inference_img_per_s']:.2f}x",
                flush=True,
            )
        # with --before, the "after" run has printed it (and its figures are in ``figures``)
        if args.device == "cpu" and not (args.startup_only or args.before):
            c = figures["ceiling"] = ceiling(models, figures[f"batch{args.batch_size}"])
            g = c["gflops_per_image"]
            print(
                f"networks: {sum(g.values()):.2f} GFLOPs per image (global {g['global']:.2f}, roi "
                f"{g['roi']:.2f}); batched inference reaches {c['inference_gflops']:.0f} GFLOPS, "
                f"{c['inference_gflops'] / c['sgemm_gflops']:.0%} of this machine's fp32 matrix "
                f"product ({c['sgemm_gflops']:.0f} GFLOPS, 2048²): at that product's rate the "
                f"networks alone would score {c['networks_ceiling_img_per_s']:.1f} img/s",
                flush=True,
            )
        picture = work / "one.png"
        Image.fromarray(images[0]).save(picture)
        if not args.skip_startup:
            cold = startup_seconds(models, picture, here, args, work, work / "cold", n=1)
            figures["startup_cold_s"] = cold  # exports the graphs into an empty cache
            figures["startup_s"] = startup_seconds(models, picture, here, args, work, work / "cold")
            print(
                f"start-up: fer predict on one picture, {figures['startup_s']:.2f} s (its first "
                f"call, exporting the graphs into an empty cache: {cold:.2f} s)",
                flush=True,
            )
            if args.before:
                old["startup_s"] = startup_seconds(models, picture, tree, args, work, work / "cold")
                figures["before"] = {"rev": args.before, **old}
                for batch in () if args.startup_only else (1, args.batch_size):
                    new, was = figures[f"batch{batch}"], old[f"batch{batch}"]
                    ratios = ", ".join(
                        f"{what} {new[k] / was[k]:.2f}x ({was[k]:.2f} -> {new[k]:.2f} img/s)"
                        for what, k in (
                            ("overall", "img_per_s"),
                            ("preprocessing", "preprocess_img_per_s"),
                            ("inference", "inference_img_per_s"),
                        )
                    )
                    if "peak_rss_mb" in was:  # older scripts did not measure it
                        mb = was["peak_rss_mb"], new["peak_rss_mb"]
                        ratios += f"; peak RSS {mb[0]:.0f} -> {mb[1]:.0f} MB"
                    print(f"after / before {args.before}, batch {batch}: {ratios}", flush=True)
                print(
                    f"start-up: {old['startup_s']:.2f} s before, {figures['startup_s']:.2f} s "
                    f"after ({old['startup_s'] / figures['startup_s']:.2f}x)",
                    flush=True,
                )
        if not (args.skip_video or args.startup_only):
            frames = pictures(50, 256)
            for n in (args.short, args.long):
                video = work / f"video{n}.mp4"
                write_video(video, frames, n)
                mb, seconds = peak_memory(models, video, args, work)
                figures[f"video{n}"] = {"frames": n, "peak_rss_mb": mb, "seconds": seconds}
                print(
                    f"video of {n:>5} frames: peak RSS {mb:7.1f} MB, {n / seconds:6.2f} "
                    f"frames/s (process start and model load included)",
                    flush=True,
                )
            a, b = figures[f"video{args.short}"], figures[f"video{args.long}"]
            growth = b["peak_rss_mb"] / a["peak_rss_mb"] - 1
            print(f"peak memory, {args.long} vs {args.short} frames: {growth:+.1%}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
