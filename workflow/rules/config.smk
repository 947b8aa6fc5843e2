# The config: validated once at parse time (schema, cross-key rules, the fusion), then read
# through the helpers below. No rules here; nothing here imports torch (parsed in every job).
import hashlib
import json
import sys
from pathlib import Path

import jsonschema
import yaml
from snakemake.utils import validate

from fer.contracts import MODELS
from fer.check_config import structure_problem
from fer.data import get_adapter, list_datasets
from fer.errors import FerError
from fer.fusion import Fusion
from fer.train import recipe as recipes

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"
VALIDATION = (
    "validation"  # the record of a trained set's validation rows: a reserved name
)


def _fail(message):
    """Stop planning with one line on stderr (no traceback): a user error in the config."""
    print(f"config error: {message}", file=sys.stderr)
    sys.exit(1)


RENAMED = {  # preprocess keys of older fer versions: the key now, and what it is
    "face_size": ("chip_size", "the stored chip's side; a model's input side"),
    "roi_size": (
        "crop_size",
        "the stored ROI crops' side; the Global-ROI Net's input side",
    ),
}


def _validate(cfg):
    # first: nothing below may walk an alias bomb's billion values
    problem = structure_problem(cfg, "the config")
    if problem:
        _fail(problem)
    for old, (new, what) in RENAMED.items():
        if old in (cfg.get("preprocess") or {}):
            _fail(
                f"preprocess.{old} is now preprocess.{new} ({what} is its recipe's {old})"
            )
    schema = yaml.safe_load(SCHEMA.read_text())
    schema["$defs"][
        "recipe"
    ] = recipes.json_schema()  # each recipe key is declared once, there
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            _fail(f"unknown key {'.'.join([*map(str, err.absolute_path), extra[0]])!r}")
        _fail(f"{key}: {err.message}")
    validate(cfg, schema=str(SCHEMA))  # fills the schema's defaults
    names = set(cfg["datasets"])
    for name in cfg["train_on"]:
        if name not in names:
            _fail(f"train_on: {name!r} is not a key of datasets ({sorted(names)})")
    for name, targets in cfg["targets"].items():
        if name not in cfg["train_on"]:
            _fail(f"targets.{name}: {name!r} is not in train_on")
        for target in targets:
            if target not in names:
                _fail(f"targets.{name}: {target!r} is not a key of datasets")
    if VALIDATION in names:
        _fail(
            f"datasets: the name {VALIDATION!r} is taken "
            f"(results/<set>/predictions/{VALIDATION}.npz)"
        )
    for name, entry in cfg["datasets"].items():
        adapter = entry.get("adapter", name)
        if adapter not in list_datasets():
            _fail(
                f"datasets.{name}: adapter {adapter!r} is not registered; "
                f"known: {', '.join(list_datasets())}"
            )
        if not entry.get("generate") and not entry.get("root"):
            _fail(
                f"datasets.{name}: needs root (where the data set lives) or generate: true"
            )
        if (
            entry.get("kfold")
            and name in cfg["targets"]
            and cfg["targets"][name] != [name]
        ):
            _fail(f"targets.{name}: a k-fold data set is evaluated on itself only")


def _fusion(cfg):
    """The fused score's weights (fer.fusion.Fusion checks them); written back into the config,
    so that everything downstream (hashes, the report's config) sees the resolved values.
    """
    try:
        fusion = Fusion.from_config(cfg["evaluate"])
    except FerError as exc:
        _fail(f"evaluate.fusion_roi, evaluate.fusion_global: {exc}")
    cfg["evaluate"].update(fusion_roi=fusion.w_roi, fusion_global=fusion.w_global)
    return fusion


_validate(config)
FUSION = _fusion(config)


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    target="|".join([*config["datasets"], VALIDATION]),
    arch="|".join(config["archs"]),
    model="|".join(MODELS),
    replicate=r"(seed\d+/)?",  # '' for one run, 'seed<s>/' for each of several replicates
    fold=r"(\.fold\d+)?",  # '' for a set with a test split, '.fold<k>' for a k-fold one


def ds(name):
    """The config entry of a data set, with the adapter filled in."""
    entry = dict(config["datasets"][name])
    entry.setdefault("adapter", name)
    return entry


def dataset_root(name):
    entry = ds(name)
    return f"resources/{name}/raw" if entry.get("generate") else entry["root"]


def kfold(name):
    return ds(name).get("kfold")


def n_images(name):
    entry = ds(name)
    return entry.get("n_images") or get_adapter(entry["adapter"]).size


def scored_set(wildcards):
    """The data set a job reads images of: its target (the trained set itself for the
    validation record), else its data set."""
    target = getattr(wildcards, "target", None)
    return wildcards.dataset if target in (None, VALIDATION) else target


def mem_mb_for(base, per_kimage):
    """Resource function: `base` MB plus `per_kimage` MB per thousand images of the data set."""

    def mem(wildcards, attempt):
        scale = 1 + 0.5 * (attempt - 1)
        return int((base + per_kimage * n_images(scored_set(wildcards)) / 1000) * scale)

    return mem


def runtime_for(base, per_kimage):
    """Resource function: minutes, scaled with the data set's size and the retry attempt."""

    def runtime(wildcards, attempt):
        return int(
            (base + per_kimage * n_images(scored_set(wildcards)) / 1000) * attempt
        )

    return runtime


def seeds(name):
    """Replicate training seeds of a trained set: its own `seeds`, else the top-level one, else
    [None] (one run with the recipe's seed)."""
    return list(ds(name).get("seeds") or config.get("seeds") or [None])


def replicates(name):
    """(seed, replicate folder) of each replicate of a trained set: folder '' for one run,
    'seed<s>/' for each of several."""
    found = seeds(name)
    if len(found) == 1:
        return [(found[0], "")]
    return [(s, f"seed{s}/") for s in found]


def seed_of(wildcards):
    """The training seed a job's models use (None: the recipe's)."""
    if wildcards.replicate:
        return int(wildcards.replicate.removeprefix("seed").removesuffix("/"))
    return seeds(wildcards.dataset)[0]


def folds(name):
    """The `{fold}` of each model of a trained set: '' or '.fold<k>' for k = 0..K-1."""
    k = kfold(name)
    return [f".fold{i}" for i in range(k)] if k else [""]


def digest(*parts):
    """Short, stable hash of JSON-able parts (provenance and change detection)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
