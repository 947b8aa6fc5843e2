# What trains each model: the merged recipe (`fer train`) or the authors' checkpoint
# (`fer import-reference`), checked at parse time as `fer train` will check it, and the
# ImageNet weights a recipe may need. No rules here; nothing here imports torch.
import shlex

from fer import imagenet
from fer.train import estimate


def merged_recipe(dataset, model):
    """defaults, then defaults_<model>, then recipes.<dataset>.<model>: later keys win."""
    return check_config.merged_recipe(config, dataset, model)


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


def reference(dataset, model):
    """(file, head classes or None) of the authors' checkpoint that replaces the training of
    (dataset, model), or None (fer.config.check checked at parse time that it can work).
    """
    merged = merged_recipe(dataset, model)
    if not merged.get("reference"):
        return None
    return merged["reference"], merged.get("reference_classes")


def init_checkpoint(dataset, source, model, seed=None):
    """The checkpoint that `init_from: <source>` fine-tunes (dataset, model) from: the source's
    single run, or its replicate of the same seed (fer.config.check checked the source).
    """
    upstream = dict(replicates(source))
    replicate = next(iter(upstream.values())) if len(upstream) == 1 else upstream[seed]
    return CHECKPOINT.format(dataset=source, replicate=replicate, model=model, fold="")


def model_inputs(wildcards):
    """An imported model needs its reference file; a trained one its prepared data (and the
    checkpoint it is fine-tuned from)."""
    found = reference(wildcards.dataset, wildcards.model)
    if found:
        return {"reference": found[0]}
    return {
        "prepared": f"{prepared_dir(wildcards)}/index.csv",
        "init": init_inputs(wildcards),
    }


def init_inputs(wildcards):
    """The upstream checkpoint of a fine-tuned model (`init_from`), else nothing."""
    text = recipe(wildcards.dataset, wildcards.model, seed_of(wildcards))
    weights = json.loads(text).get("weights", "")
    return (
        [weights] if weights.startswith("models/") and weights.endswith(".pt") else []
    )


def model_job(wildcards):
    """The verb and arguments that make the checkpoint: `fer import-reference` for the
    authors' file, else `fer train` with the merged recipe."""
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
    fold = ["--fold", wildcards.fold.removeprefix(".fold")] if wildcards.fold else []
    args = ["train", "--prepared", prepared_dir(wildcards), "--arch", model, *fold]
    text = recipe(dataset, model, seed_of(wildcards))
    return shlex.join([*args, "--recipe", text, "--no-progress"])


def train_runtime(wildcards, attempt):
    """Minutes a training job is given (its SLURM time limit; `snakemake -n` shows it): the
    estimate of fer.train.estimate from the job's merged recipe, times the attempt; an import
    of the authors' checkpoint, 10."""
    dataset, model = wildcards.dataset, wildcards.model
    if reference(dataset, model):
        return 10 * attempt
    r = recipes.Recipe.from_json(recipe(dataset, model, seed_of(wildcards)))
    n, k = n_images(dataset), kfold(dataset)
    pool = (
        n * (k - 1) / k if k else 0.9 * n
    )  # the training part (a test split: about 10 %)
    n_val = pool * ds(dataset)["val_fraction"]
    minutes = estimate.train_minutes(
        model,
        epochs=r.epochs,
        n_train=int(pool - n_val),
        n_val=int(n_val),
        n_classes=len(get_adapter(ds(dataset)["adapter"]).classes),
        face_size=r.face_size or config["preprocess"]["chip_size"],
        samples_per_class=r.samples_per_class,
        batch_size=r.batch_size,
        max_steps_per_epoch=r.max_steps_per_epoch,
        tta=r.tta,
    )
    return minutes * attempt


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
            if job.rule.name == "train_model"
        ]
    except AttributeError:  # another Snakemake's DAG: check every model
        models = None
    if problem := imagenet_missing(models):
        _fail(problem)


if workflow.is_main_process and (missing := imagenet_missing()):
    # the config's models, whatever the targets (planning does not know them yet); the check
    # before the first job (onstart) looks at the jobs about to run only
    print(
        f"note: {missing}; a run that trains one of them stops before its first job",
        file=sys.stderr,
    )
