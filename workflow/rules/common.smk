# Helpers shared by the rules: config validation, wildcard constraints, input functions and
# resource scaling. No rules here; nothing here imports torch (this file is parsed in every job).
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

import jsonschema
import yaml
from snakemake.utils import validate

from fer import imagenet
from fer.contracts import MODELS
from fer.data import get_adapter, list_datasets
from fer.errors import FerError
from fer.train import recipe as recipes

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"


def _fail(message):
    """Stop planning with one line on stderr (no traceback): a user error in the config."""
    print(f"config error: {message}", file=sys.stderr)
    sys.exit(1)


def _validate(cfg):
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
    if "validation" in names:
        _fail(
            "datasets: the name 'validation' is taken (results/<set>/predictions/validation.npz)"
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


_validate(config)


def _folds():
    """Fold numbers any k-fold data set of the config has."""
    k = max(
        [entry.get("kfold") or 0 for entry in config["datasets"].values()], default=0
    )
    return "|".join(str(i) for i in range(k)) or "none"


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    target="|".join(config["datasets"]),
    arch="|".join(config["archs"]),
    model="|".join(MODELS),
    fold=_folds(),
    seed=r"\d+",


def ds(name):
    """The config entry of a data set, with the adapter filled in."""
    entry = dict(config["datasets"][name])
    entry.setdefault("adapter", name)
    return entry


def dataset_root(name):
    entry = ds(name)
    return f"resources/{name}/raw" if entry.get("generate") else entry["root"]


def manifest_inputs(wildcards):
    """A generated data set needs its generator's output; a real one needs nothing planned."""
    return (
        [f"resources/{wildcards.dataset}/raw"]
        if ds(wildcards.dataset).get("generate")
        else []
    )


def n_images(name):
    entry = ds(name)
    return entry.get("n_images") or get_adapter(entry["adapter"]).size


def mem_mb_for(base, per_kimage):
    """Resource function: `base` MB plus `per_kimage` MB per thousand images of the data set."""

    def mem(wildcards, attempt):
        name = getattr(wildcards, "target", None) or wildcards.dataset
        return int(
            (base + per_kimage * n_images(name) / 1000) * (1 + 0.5 * (attempt - 1))
        )

    return mem


def runtime_for(base, per_kimage):
    """Resource function: minutes, scaled with the data set's size and the retry attempt."""

    def runtime(wildcards, attempt):
        name = getattr(wildcards, "target", None) or wildcards.dataset
        return int((base + per_kimage * n_images(name) / 1000) * attempt)

    return runtime


def seeds(name):
    """Replicate training seeds of a trained set: its own `seeds`, else the top-level one, else
    [None] (one run with the recipe's seed)."""
    return list(ds(name).get("seeds") or config.get("seeds") or [None])


def replicates(name):
    """(seed, folder) of each replicate: folder '' for one run (today's paths), 'seed<s>/' for
    several."""
    found = seeds(name)
    if len(found) == 1:
        return [(found[0], "")]
    return [(s, f"seed{s}/") for s in found]


def sub_of(wildcards):
    """The replicate folder of a job: 'seed<s>/' for a replicate's job, else ''."""
    return f"seed{wildcards.seed}/" if hasattr(wildcards, "seed") else ""


def seed_of(wildcards):
    """The training seed a job's models use (None: the recipe's)."""
    if hasattr(wildcards, "seed"):
        return int(wildcards.seed)
    return seeds(wildcards.dataset)[0]


def recipe(dataset, model, seed=None):
    """The merged training recipe of (data set, model) for replicate `seed` (None: the
    recipe's own), as a JSON string for `fer train`.

    Its `config_hash` covers only what the model depends on (recipe, data set entry,
    preprocessing), so editing an unrelated key does not retrain anything.
    """
    merged = merged_recipe(dataset, model)
    for key in ("reference", "reference_classes"):  # the import job's, not fer train's
        merged.pop(key, None)
    if seed is not None:
        merged["seed"] = int(seed)
    source = merged.pop("init_from", None)
    if source:
        merged["weights"] = init_checkpoint(dataset, source, model, seed)
    if kfold(dataset):
        merged.setdefault("val_fraction", ds(dataset)["val_fraction"])
    merged["dataset"] = dataset
    entry = {
        k: v for k, v in ds(dataset).items() if k != "seeds"
    }  # a seed's model is its own
    merged["config_hash"] = digest(merged, entry, config["preprocess"])
    return json.dumps(merged, sort_keys=True)


def merged_recipe(dataset, model):
    """defaults, then defaults_<model>, then recipes.<dataset>.<model>: later keys win."""
    train = config["train"]
    merged = {**train["defaults"], **train[f"defaults_{model}"]}
    merged.update(train["recipes"].get(dataset, {}).get(model, {}))
    return merged


def reference(dataset, model):
    """(file, head classes or None) of the authors' checkpoint that replaces the training of
    (dataset, model), or None; a combination that cannot work stops planning with one line.
    """
    merged = merged_recipe(dataset, model)
    if not merged.get("reference"):
        return None
    where = f"train recipe of {dataset}/{model}: reference"
    if kfold(dataset):
        _fail(
            f"{where}: a k-fold set has one model per fold, the authors' file is one model"
        )
    if len(seeds(dataset)) > 1:
        _fail(f"{where}: the authors' file is one model; it has no replicate seeds")
    if merged.get("init_from"):
        _fail(f"{where} and init_from: a model is either imported or fine-tuned")
    classes = merged.get("reference_classes")
    adapter = ds(dataset)["adapter"]
    if not classes and get_adapter(adapter).reference_order is None:
        _fail(
            f"{where}: the reference code gives no class order for {adapter}'s models; "
            "state the head's order with reference_classes: [...]"
        )
    return merged["reference"], classes


def model_inputs(wildcards):
    """An imported model needs its reference file; a trained one its prepared data (and the
    checkpoint it is fine-tuned from)."""
    found = reference(wildcards.dataset, wildcards.model)
    if found:
        return {"reference": found[0]}
    return {
        "prepared": f"resources/{wildcards.dataset}/prepared/index.csv",
        "init": init_inputs(wildcards),
    }


def model_job(wildcards):
    """The verb and arguments that make models/<dataset>/<model>.pt: `fer import-reference`
    for the authors' checkpoint, else `fer train` with the merged recipe."""
    dataset, model = wildcards.dataset, wildcards.model
    found = reference(dataset, model)
    if found:
        path, classes = found
        global_input = merged_recipe(dataset, model).get("global_input", "aligned")
        args = ["import-reference", "--arch", model, "--checkpoint", path, "--dataset"]
        args += [
            ds(dataset)["adapter"],
            "--name",
            dataset,
            "--global-input",
            global_input,
        ]
        args += ["--config-hash", digest(found, global_input)]
        args += ["--classes", ",".join(classes)] if classes else []
        return shlex.join(args)
    fold = ["--fold", wildcards.fold] if hasattr(wildcards, "fold") else []
    args = ["train", "--prepared", prepared_dir(wildcards), "--arch", model, *fold]
    text = recipe(dataset, model, seed_of(wildcards))
    return shlex.join([*args, "--recipe", text, "--no-progress"])


def init_checkpoint(dataset, source, model, seed=None):
    """The checkpoint that `init_from: <source>` fine-tunes (dataset, model) from: the source's
    single run, or its replicate of the same seed."""
    where = f"train recipe of {dataset}/{model}: init_from"
    if source not in config["datasets"]:
        _fail(
            f"{where} {source!r} is not a key of datasets ({sorted(config['datasets'])})"
        )
    if source == dataset:
        _fail(f"{where} names the data set itself")
    if kfold(source):
        _fail(
            f"{where} {source!r} is a k-fold set (one model per fold); name a set with a test split"
        )
    upstream = dict(replicates(source))
    if len(upstream) == 1:
        return f"models/{source}/{next(iter(upstream.values()))}{model}.pt"
    if seed not in upstream:
        _fail(
            f"{where} {source!r} has replicate seeds {sorted(upstream)}; seed {seed} of "
            f"{dataset} has no model to start from (give both sets the same seeds, or the source one)"
        )
    return f"models/{source}/{upstream[seed]}{model}.pt"


def init_inputs(wildcards):
    """The upstream checkpoint of a fine-tuned model (`init_from`), else nothing."""
    text = recipe(wildcards.dataset, wildcards.model, seed_of(wildcards))
    weights = json.loads(text).get("weights", "")
    return (
        [weights] if weights.startswith("models/") and weights.endswith(".pt") else []
    )


def digest(*parts):
    """Short, stable hash of JSON-able parts (provenance and change detection)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def evaluate_hash(wildcards):
    """What a result depends on beyond its checkpoints: evaluation settings and the target."""
    return digest(config["evaluate"], ds(wildcards.target), config["preprocess"])


def kfold(name):
    return ds(name).get("kfold")


def checkpoints(dataset, model, sub=""):
    """The checkpoint(s) of a trained model in replicate folder `sub`: one per fold for k-fold
    data sets."""
    k = kfold(dataset)
    if k:
        return [f"models/{dataset}/{sub}{model}.fold{i}.pt" for i in range(k)]
    return [f"models/{dataset}/{sub}{model}.pt"]


def predict_inputs(wildcards):
    """A prediction record's inputs: the scored set's prepared data and both models of the
    replicate (`fer infer`); the validation record scores the trained set itself."""
    dataset = wildcards.dataset
    if dataset not in config["train_on"]:
        raise ValueError(f"{dataset!r} is not in train_on")
    sub = sub_of(wildcards)
    return {
        "prepared": f"{prepared_dir(wildcards)}/index.csv",
        "global_ckpt": checkpoints(dataset, "global", sub),
        "roi_ckpt": checkpoints(dataset, "roi", sub),
    }


def infer_rows(wildcards):
    """Which rows `fer infer` scores: the validation carve, the test split (or folds) within a
    set, every row across sets."""
    if not hasattr(wildcards, "target"):
        return "--validation"
    return "--within" if wildcards.dataset == wildcards.target else ""


def records(dataset, target):
    """The prediction records of (trained set, target): one per replicate seed."""
    return [
        f"results/{dataset}/{sub}predictions/{target}.npz"
        for _, sub in replicates(dataset)
    ]


def validation_records(dataset):
    return [
        f"results/{dataset}/{sub}predictions/validation.npz"
        for _, sub in replicates(dataset)
    ]


def evaluate_inputs(wildcards):
    """A cell's prediction records, and for a fused cell with `fusion_search` the trained set's
    validation records."""
    if wildcards.dataset not in config["train_on"]:
        raise ValueError(f"{wildcards.dataset!r} is not in train_on")
    out = {"predictions": records(wildcards.dataset, wildcards.target)}
    if wildcards.arch == "fused" and config["evaluate"]["fusion_search"]:
        out["validation"] = validation_records(wildcards.dataset)
    return out


def validation_flag(wildcards, input):
    return (
        f"--validation {' '.join(input.validation)}"
        if "validation" in input.keys()
        else ""
    )


def result_cells():
    """Every declared table cell: (dataset, target, arch, path)."""
    return [
        (d, t, a, f"results/{d}/{t}_{a}.json")
        for d in config["train_on"]
        for t in config["targets"].get(d, [d])
        for a in config["archs"]
    ]


def all_results(wildcards=None):
    return [cell[3] for cell in result_cells()]


def cells_json():
    keys = ("dataset", "target", "arch", "path")
    return json.dumps(
        [
            dict(zip(keys, cell)) | {"within": cell[0] == cell[1]}
            for cell in result_cells()
        ]
    )


def trained_models():
    return [
        c
        for d in config["train_on"]
        for _, sub in replicates(d)
        for m in MODELS
        for c in checkpoints(d, m, sub)
    ]


def pair_inputs(wildcards):
    """Both models' checkpoints of a data set's replicate (every fold's for a k-fold one)."""
    return [
        c for m in MODELS for c in checkpoints(wildcards.dataset, m, sub_of(wildcards))
    ]


def models_folder(wildcards):
    """models/{dataset}, or models/{dataset}/seed{seed} for a replicate's job."""
    return str(Path("models", wildcards.dataset, sub_of(wildcards)))


def predictors(wildcards=None):
    """models/{dataset}[/seed{s}]/fusion.json of every trained pair: what `fer predict
    --models` reads."""
    return [
        f"models/{d}/{sub}fusion.json"
        for d in config["train_on"]
        for _, sub in replicates(d)
    ]


def histories(wildcards=None):
    return [c.removesuffix(".pt") + ".history.csv" for c in trained_models()]


def prepared_datasets():
    names = set(config["train_on"])
    for d in config["train_on"]:
        names.update(config["targets"].get(d, [d]))
    return sorted(names)


def prepared_summaries(wildcards=None):
    return [f"resources/{d}/prepared/summary.json" for d in prepared_datasets()]


def ds_param(key):
    """Params function: a data set's config value (`root` resolves generated data sets)."""

    def value(wildcards):
        if key == "root":
            return dataset_root(wildcards.dataset)
        if key == "options":
            return json.dumps(ds(wildcards.dataset)["options"])
        if key == "kfold":
            k = kfold(wildcards.dataset)
            return f"--kfold {k}" if k else ""
        return ds(wildcards.dataset)[key]

    return value


def prepared_dir(wildcards):
    return (
        f"resources/{getattr(wildcards, 'target', None) or wildcards.dataset}/prepared"
    )


def within_flag(wildcards):
    return "--within" if wildcards.dataset == wildcards.target else ""


def expected_benchmarks():
    """Benchmark files of the jobs behind the report (those present are read at run time)."""
    files = [f"benchmarks/prepare_faces/{d}.tsv" for d in prepared_datasets()]
    for ckpt in trained_models():
        where = ckpt.removeprefix("models/").removesuffix(".pt")
        step = "train_fold" if ".fold" in where else "train_model"
        step += (
            "_seed" if len(Path(where).parts) > 2 else ""
        )  # SET/seedS/NAME: a replicate
        files.append(f"benchmarks/{step}/{where}.tsv")
    for d in config["train_on"]:
        for _, sub in replicates(d):
            files += [
                f"benchmarks/predict_target/{d}/{sub}{t}.tsv"
                for t in config["targets"].get(d, [d])
            ]
            where = Path("benchmarks/predict_validation", d, sub).with_suffix(".tsv")
            files.append(str(where))
    files += [
        f"benchmarks/evaluate_cell/{d}/{t}_{a}.tsv" for d, t, a, _ in result_cells()
    ]
    return " ".join(files)


def check_recipes():
    """Every merged recipe, checked as `fer train` will check it (bounds across keys too), and
    every reference checkpoint declared (k-fold, class order)."""
    for dataset in config["train_on"]:
        for model in MODELS:
            reference(dataset, model)
            for seed in seeds(dataset):
                try:
                    recipes.Recipe.from_json(
                        recipe(dataset, model, seed),
                        f"train recipe of {dataset}/{model}",
                    )
                except FerError as exc:
                    _fail(str(exc))


check_recipes()


def imagenet_missing(models=None):
    """A line saying which models ask for ImageNet weights that are not in the cache (None if
    none does); ``models``: the (data set, model) pairs to be trained (None: all of them).
    """
    if models is None:
        models = [(d, m) for d in config["train_on"] for m in MODELS]
    users = [
        f"{d}/{m}"
        for d, m in sorted(set(models))
        if json.loads(recipe(d, m, seeds(d)[0])).get("weights") == "imagenet"
    ]
    path = imagenet.cache_path()
    if not users or path.is_file():
        return None
    return (
        f"the recipes of {', '.join(users)} ask for ImageNet weights (weights: imagenet), not at "
        f"{path}: run `fer fetch-weights` (or `fer fetch-weights --from FILE`), or set TORCH_HOME"
    )


def stop_without_imagenet():
    """onstart: stop before any job when a training about to run lacks its ImageNet weights."""
    try:
        jobs = workflow.dag.needrun_jobs()
        models = [
            (job.wildcards.dataset, job.wildcards.model)
            for job in jobs
            if job.rule.name.startswith(("train_model", "train_fold"))
        ]
    except AttributeError:  # another Snakemake's DAG: check every model
        models = None
    if problem := imagenet_missing(models):
        _fail(problem)


PLANNED_AT = time.time()


def say_where_the_report_is():
    """onsuccess: the report's path, when this run (re)wrote it."""
    page = Path("reports/all.html")
    if page.is_file() and page.stat().st_mtime >= PLANNED_AT:
        print(f"report: {page.resolve()}", file=sys.stderr)


if workflow.is_main_process and (missing := imagenet_missing()):
    print(f"note: {missing}; a run stops there, before its first job", file=sys.stderr)
