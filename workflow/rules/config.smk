# The config: validated once at parse time (schema, cross-key rules, the fusion), then read
# through the helpers below. No rules here; nothing here imports torch (parsed in every job).
import hashlib
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

from fer.config import check as check_config
from fer.contracts import MODELS
from fer.data import get_adapter
from fer.errors import FerError
from fer.fusion import Fusion
from fer.train import recipe as recipes

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"
VALIDATION = check_config.VALIDATION  # the record of a trained set's validation rows


def _fail(message):
    """Stop planning with one line on stderr (no traceback): a user error in the config."""
    print(f"config error: {message}", file=sys.stderr)
    sys.exit(1)


def _validate(cfg):
    """Every problem of the merged config at once (fer.config.check.problems, the checks of
    `fer check-config`), each one line with the file and line that hold it; then the schema's
    defaults are filled in."""
    schema = check_config.load_schema(SCHEMA)
    files = []
    for path in workflow.overwrite_configfiles or ["config/config.yaml"]:
        try:
            path = Path(path)
            inside = path.is_absolute() and path.is_relative_to(Path.cwd())
            files.append(
                (
                    str(path.relative_to(Path.cwd()) if inside else path),
                    path.read_text(),
                )
            )
        except OSError:
            pass
    overrides = workflow.config_settings.config  # --config KEY=VALUE
    found = check_config.problems(cfg, schema, files, overrides)
    if found:
        for line in found:
            print(f"config error: {line}", file=sys.stderr)
        sys.exit(1)
    validate(cfg, schema=str(SCHEMA))  # fills the schema's defaults


def _fusion(cfg):
    """The fused score's weights (fer.fusion.Fusion checks them); written back into the config,
    so that everything downstream (hashes, the report's config) sees the resolved values.
    """
    fusion = Fusion.from_config(cfg["evaluate"])  # checked by _validate
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


def snakemake_command():
    """The snakemake command line of this run, for the report's head ('' when Snakemake was
    not started from its command line)."""
    if Path(sys.argv[0]).name not in ("snakemake", "__main__.py"):
        return ""
    return shlex.join(["snakemake", *sys.argv[1:]])


# passed through the environment, not params: another command line must not rerun the report
os.environ.setdefault("FER_COMMAND", snakemake_command())
