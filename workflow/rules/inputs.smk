# Input and params functions of the rules: which files a job reads, which flags it gets.
# No rules here; nothing here imports torch.
import time


def manifest_inputs(wildcards):
    """A generated data set needs its generator's output; a real one needs nothing planned."""
    return (
        [f"resources/{wildcards.dataset}/raw"]
        if ds(wildcards.dataset).get("generate")
        else []
    )


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
    """The prepared folder a job reads: its target's (see `scored_set`), else its data set's."""
    return PREPARED.format(dataset=scored_set(wildcards))


def infer_inputs(wildcards):
    """A prediction record's inputs: the scored set's prepared data and both models of the
    replicate (every fold's for a k-fold set)."""
    if wildcards.dataset not in config["train_on"]:
        raise ValueError(f"{wildcards.dataset!r} is not in train_on")
    return {
        "prepared": f"{prepared_dir(wildcards)}/index.csv",
        "global_ckpt": checkpoints(wildcards.dataset, "global", wildcards.replicate),
        "roi_ckpt": checkpoints(wildcards.dataset, "roi", wildcards.replicate),
    }


def infer_rows(wildcards):
    """Which rows `fer infer` scores: the trained set's validation carve, its test split (or
    folds) within a set, every row across sets."""
    if wildcards.target == VALIDATION:
        return "--validation"
    return "--within" if wildcards.dataset == wildcards.target else ""


def evaluate_inputs(wildcards):
    """A cell's prediction records, and for a fused cell whose weight is searched the trained
    set's validation records."""
    if wildcards.dataset not in config["train_on"]:
        raise ValueError(f"{wildcards.dataset!r} is not in train_on")
    out = {"predictions": records(wildcards.dataset, wildcards.target)}
    if wildcards.arch == "fused" and fusion_searched():
        out["validation"] = records(wildcards.dataset, VALIDATION)
    return out


def validation_flag(wildcards, input):
    return (
        f"--validation {' '.join(input.validation)}"
        if "validation" in input.keys()
        else ""
    )


def evaluate_hash(wildcards):
    """What a result depends on beyond its checkpoints: evaluation settings and the target."""
    return digest(config["evaluate"], ds(wildcards.target), config["preprocess"])


def models_folder(wildcards):
    """models/{dataset}, or models/{dataset}/seed{s} for a replicate's job."""
    return str(Path("models", wildcards.dataset, wildcards.replicate))


def pair_inputs(wildcards):
    """Both models' checkpoints of a data set's replicate (every fold's for a k-fold one)."""
    return [
        c
        for m in MODELS
        for c in checkpoints(wildcards.dataset, m, wildcards.replicate)
    ]


PLANNED_AT = time.time()


def note_a_report_without_its_inputs():
    """At planning: Snakemake keeps a report that exists even when files it was made from were
    deleted since (it rebuilds what a target needs only where the target is missing or older
    than an input that is there); say so, and how to rebuild."""
    page = Path(REPORT)
    if not page.is_file():
        return
    made_from = [*all_results(), *histories(), *predictors()]
    gone = [path for path in made_from if not Path(path).exists()]
    if gone:
        print(
            f"note: {REPORT} exists but {len(gone)} of the files it was made from are gone "
            f"(e.g. {gone[0]}); Snakemake keeps the report as it is: add --forcerun "
            "render_report to rebuild them and it",
            file=sys.stderr,
        )


def say_where_the_report_is():
    """onsuccess: the report's path, when this run (re)wrote it."""
    page = Path(REPORT)
    if page.is_file() and page.stat().st_mtime >= PLANNED_AT:
        print(f"report: {page.resolve()}", file=sys.stderr)
