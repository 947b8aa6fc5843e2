"""Speed and memory of ``fer predict`` (issue 17's goals: batched ≥ 3× batch 1; peak memory on a
2,000-frame video within 10 % of a 200-frame one).

1. Images/s of :class:`fer.Predictor` at batch 1 and batched, on ``--n-images`` pictures (crops of
   skimage's astronaut, one face each), preprocessing (detection, alignment, ROI crops) and
   inference (both networks and the fusion) timed apart.
2. Peak resident memory of ``fer predict`` on a ``--short``-frame and a ``--long``-frame video
   (each run in a fresh process), and its frames/s.

The models are seeded, untrained networks of the sizes given (default the reference's 224 / 90;
speed does not depend on the weights), recording MTCNN preprocessing. Nothing is downloaded.

    python benchmarks/bench_predict.py                       # CPU, reference sizes
    python benchmarks/bench_predict.py --device cuda --batch-size 64
    python benchmarks/bench_predict.py --face-size 48 --roi-size 24 --stored 112 48
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer import cliargs  # noqa: E402

PEAK = """
import resource, sys
from fer.cli import main
rc = main(sys.argv[1:])
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
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


def images_per_second(models: Path, images: list, batch: int, device: str) -> dict:
    from fer import Predictor
    from fer.predict.core import Timing

    predictor = Predictor.from_dir(models, device=device, batch_size=batch, progress=False)
    predictor.predict(images[: min(len(images), max(batch, 2))])  # warm-up: allocator, kernels
    predictor.timing = Timing()  # the warm-up is not counted
    start = time.perf_counter()
    table = predictor.predict(images)
    seconds = time.perf_counter() - start
    t = predictor.timing
    return {
        "batch": batch,
        "images": len(images),
        "faces_ok": int((table.status == "ok").sum()),
        "img_per_s": len(images) / seconds,
        "preprocess_img_per_s": len(images) / t.preprocess_s,
        "inference_img_per_s": len(images) / max(t.inference_s, 1e-9),
        "preprocess_s": t.preprocess_s,
        "inference_s": t.inference_s,
    }


def peak_memory(models: Path, video: Path, args, work: Path) -> tuple[float, float]:
    """Peak RSS (MB) and frames/s of `fer predict` on ``video`` in a fresh process."""
    cmd = [sys.executable, "-c", PEAK, "predict", str(video), "--models", str(models)]
    cmd += ["--device", args.device, "--no-progress", "--out", str(work / f"{video.stem}.csv")]
    cmd += ["--batch-size", str(args.batch_size)]
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if r.returncode:
        raise SystemExit(f"fer predict failed:\n{r.stderr[-2000:]}")
    kb = int(r.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return kb / 1024, seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cliargs.add_input_sizes(p, "side in pixels")
    stored = "sides of the prepared chip and ROI crops (default: the model input sizes)"
    p.add_argument("--stored", nargs=2, type=int, metavar=("CHIP", "CROP"), help=stored)
    p.add_argument("--batch-size", type=cliargs.integer(2), default=32, help="batched run")
    p.add_argument("--n-images", type=cliargs.integer(2), default=64, help="pictures timed")
    p.add_argument("--short", type=cliargs.integer(1), default=200, help="frames, short video")
    p.add_argument("--long", type=cliargs.integer(1), default=2000, help="frames, long video")
    p.add_argument("--skip-video", action="store_true", help="only the images/s part")
    cliargs.add_device(p)
    cliargs.add_threads(p)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
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
        models = work / "models"
        models.mkdir()
        make_models(models, args)
        images = pictures(args.n_images)
        for batch in (1, args.batch_size):
            f = images_per_second(models, images, batch, args.device)
            figures[f"batch{batch}"] = f
            print(
                f"batch {batch:>3}: {f['img_per_s']:6.2f} img/s overall; preprocessing "
                f"{f['preprocess_img_per_s']:6.2f} img/s ({f['preprocess_s']:.1f} s), inference "
                f"{f['inference_img_per_s']:7.2f} img/s ({f['inference_s']:.1f} s); "
                f"{f['faces_ok']}/{f['images']} faces ok",
                flush=True,
            )
        one, many = figures["batch1"], figures[f"batch{args.batch_size}"]
        print(
            f"batched / batch 1: overall {many['img_per_s'] / one['img_per_s']:.2f}x, "
            f"preprocessing {many['preprocess_img_per_s'] / one['preprocess_img_per_s']:.2f}x, "
            f"inference {many['inference_img_per_s'] / one['inference_img_per_s']:.2f}x",
            flush=True,
        )
        if not args.skip_video:
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
