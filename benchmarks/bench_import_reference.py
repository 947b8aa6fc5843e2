"""Seconds to import one of the authors' checkpoints with `fer import-reference` (goal: < 5 s for
the 24 M-parameter Global-ROI Net on a CPU).

A reference-format file is written first, from the stand-ins of the authors' modules in
tests/reference_standins (a separate process, as the authors' `torch.save(model)` did), plain or
inside nn.DataParallel; the import is then timed in this process, where those modules do not
exist.

    python benchmarks/bench_import_reference.py --arch roi --repeat 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WRITE = """
import sys, torch
from package.model1 import ResNet
from package.resnet_cbam import Resnet
arch, classes, dp, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
model = Resnet(classes) if arch == "global" else ResNet(classes, n_head=8, resnet_cbam=1)
torch.save(torch.nn.DataParallel(model) if dp else model, out)
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=("global", "roi"), default="roi", help="which model")
    p.add_argument("--classes", type=int, default=8, help="head size (7 or 8)")
    p.add_argument("--data-parallel", action="store_true", help="wrapped in nn.DataParallel")
    p.add_argument("--repeat", type=int, default=3, help="timed imports")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from fer.train.reference import import_reference

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"{args.arch}.path"
        env = {"PYTHONPATH": str(REPO / "tests" / "reference_standins"), "PATH": ""}
        flag = "1" if args.data_parallel else "0"
        subprocess.run(
            [sys.executable, "-c", WRITE, args.arch, str(args.classes), flag, str(source)],
            check=True,
            env=env,
        )
        size = source.stat().st_size / 1e6
        times = []
        for i in range(args.repeat):
            start = time.perf_counter()
            meta = import_reference(args.arch, source, "affectnet8", Path(tmp) / f"out{i}.pt")
            times.append(time.perf_counter() - start)
        import torch

        model = torch.load(Path(tmp) / "out0.pt", weights_only=True)["state_dict"]
        params = sum(t.numel() for k, t in model.items() if "running" not in k and "num_b" not in k)
    print(
        f"{args.arch}: {params:,} parameters ({size:.0f} MB file, classes "
        f"{len(meta['classes'])}, data_parallel={args.data_parallel}): import "
        f"{min(times):.2f} s best of {args.repeat} (all: {', '.join(f'{t:.2f}' for t in times)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
