"""``fer import-reference``: one of the authors' released checkpoints as a fer checkpoint.

The training stage's other way to a model: where a recipe names ``reference: FILE``, the workflow
runs this verb instead of ``fer train``, and it writes the same three files (the checkpoint,
``{out stem}.history.csv`` with no epoch, ``{out stem}.run.json``). The conversion itself, safe
and checked tensor by tensor, is :func:`fer.models.reference.reference_model`; here the head's
class order is found (stated, or the data set's adapter's ``reference_order``) and the meta is
written as every checkpoint's is (:func:`fer.models.meta.checkpoint_meta`).
"""

from __future__ import annotations

import time
from pathlib import Path

from fer.errors import FerError


def head_order(dataset: str, classes: list[str] | None) -> list[str]:
    """The classes of the head's rows, in order: stated, or the reference's for the data set
    (its adapter's ``reference_order``: reference §4.2, AffectNet codes)."""
    from fer.data import get_adapter

    if classes:
        return list(classes)
    known = get_adapter(dataset).reference_order
    if known is None:
        raise FerError(
            f"--dataset {dataset}: the reference code does not give its models' class order "
            "for it; state the head's order with --classes (e.g. --classes neutral,happy,...)"
        )
    return list(known)


def import_reference(
    arch: str,
    checkpoint: str | Path,
    dataset: str,
    out: str | Path,
    classes: list[str] | None = None,
    name: str | None = None,
    global_input: str = "aligned",
    config_hash: str = "",
) -> dict:
    """Import one of the authors' checkpoints as a fer checkpoint ``out``; returns its meta.

    ``dataset``: the reference data set it was trained on (its class order, its selection);
    ``classes``: the head's class order, where the reference's is unknown (FERPlus);
    ``name``: the data set's name in the workflow (default ``dataset``); ``global_input``: what
    the Global Net is scored on (the authors trained it on un-aligned frames: ``original``).
    Any problem is a FerError naming the file.
    """
    from fer.atomic import atomic_write, write_json
    from fer.contracts import HISTORY_COLUMNS
    from fer.models import save_checkpoint
    from fer.models.meta import checkpoint_meta
    from fer.models.reference import REFERENCE_PREPROCESS, SELECTION, reference_model
    from fer.provenance import git_sha, versions

    started, out = time.perf_counter(), Path(out)
    order = head_order(dataset, classes)
    model, fer_classes, origin = reference_model(arch, Path(checkpoint), order)
    selection = SELECTION.get(dataset, "test")
    meta = checkpoint_meta(
        model=arch,
        classes=fer_classes,
        sizes=(model.face_size, model.roi_size),
        dataset=name or dataset,
        adapter=dataset,
        selection=selection,
        preprocess=REFERENCE_PREPROCESS,
        global_input=global_input,
        git_sha=git_sha(),
        config_hash=config_hash,
        origin={"origin": "reference", "reference": origin},
        warning="the authors chose this checkpoint on the test split"
        if selection == "test"
        else None,
    )
    stem = out.parent / out.stem
    with atomic_write(f"{stem}.history.csv", newline="") as fh:
        fh.write(",".join(HISTORY_COLUMNS) + "\n")  # no epoch: imported, not trained
    meta = save_checkpoint(out, model, meta)
    run = {
        "origin": "reference",
        "dataset": meta["dataset"],
        "arch": arch,
        "fold": None,
        "reference": origin,
        "classes": fer_classes,
        "selection": selection,
        "selected_on_test": selection == "test",
        "git_sha": meta["git_sha"],
        "versions": versions(),
        "import_s": round(time.perf_counter() - started, 3),
        "checkpoint_meta": meta,
    }
    write_json(f"{stem}.run.json", run)
    return meta


def main(argv: list[str] | None = None) -> int:
    """``fer import-reference``."""
    from fer import cliargs
    from fer.models.reference_pickle import NAMES, ROOTS
    from fer.paths import writable_out

    p = cliargs.parser(
        "fer import-reference",
        "Import one of the authors' released checkpoints (a whole-module pickle, plain or in "
        "nn.DataParallel) as a fer checkpoint, safely: only the globals their files name are "
        "accepted, as inert placeholders; no reference code is imported or run.",
    )
    p.add_argument("--arch", required=True, choices=list(ROOTS), help="global.path or roi.path")
    p.add_argument("--checkpoint", required=True, type=Path, help="the authors' .path file")
    p.add_argument("--dataset", required=True, help="its data set's adapter, e.g. rafdb, ferplus")
    p.add_argument("--out", required=True, type=Path, help="the fer checkpoint to write")
    order = "the head's class order, comma-separated (needed for ferplus)"
    p.add_argument("--classes", type=lambda t: [c.strip() for c in t.split(",")], help=order)
    p.add_argument("--name", help="the data set's name in the workflow (default: --dataset)")
    scored = "what the Global Net is scored on (the authors trained it on original frames)"
    p.add_argument(
        "--global-input", choices=("aligned", "original"), default="aligned", help=scored
    )
    p.add_argument("--config-hash", default="", help="workflow config hash, for provenance")
    cliargs.add_threads(p)
    args = p.parse_args(argv)
    writable_out(args.out, inputs=[args.checkpoint])
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    meta = import_reference(
        args.arch,
        args.checkpoint,
        args.dataset,
        args.out,
        args.classes,
        args.name,
        args.global_input,
        args.config_hash,
    )
    print(
        f"wrote {args.out}: the authors' {NAMES[args.arch]} for {args.dataset}, classes "
        f"{', '.join(meta['classes'])}"
    )
    return 0
