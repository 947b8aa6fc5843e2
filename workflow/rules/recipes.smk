# What trains each model: the merged recipe (`fer train`) or the authors' checkpoint
# (`fer import-reference`), checked at parse time as `fer train` will check it, and the
# ImageNet weights a recipe may need. No rules here; nothing here imports torch.
import shlex

from fer import imagenet


def merged_recipe(dataset, model):
    """defaults, then defaults_<model>, then recipes.<dataset>.<model>: later keys win."""
    train = config["train"]
    merged = {**train["defaults"], **train[f"defaults_{model}"]}
    merged.update(train["recipes"].get(dataset, {}).get(model, {}))
    return merged


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
        (replicate,) = upstream.values()
    elif seed in upstream:
        replicate = upstream[seed]
    else:
        _fail(
            f"{where} {source!r} has replicate seeds {sorted(upstream)}; seed {seed} of "
            f"{dataset} has no model to start from (give both sets the same seeds, or the source one)"
        )
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
            if job.rule.name == "train_model"
        ]
    except AttributeError:  # another Snakemake's DAG: check every model
        models = None
    if problem := imagenet_missing(models):
        _fail(problem)


if workflow.is_main_process and (missing := imagenet_missing()):
    print(f"note: {missing}; a run stops there, before its first job", file=sys.stderr)
