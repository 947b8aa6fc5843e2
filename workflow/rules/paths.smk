# Every file the rules write, declared once as a pattern. The rules take the patterns as their
# outputs, logs and benchmarks; the lists below fill them in with the wildcards of every job
# behind the report (one run or several replicate seeds, a test split or k folds: the same
# patterns, `{replicate}` and `{fold}` being '' where there is one). No rules here.

PREPARED = "resources/{dataset}/prepared"
MODEL = "models/{dataset}/{replicate}{model}{fold}"
CHECKPOINT, HISTORY, RUN = (
    f"{MODEL}{ext}" for ext in (".pt", ".history.csv", ".run.json")
)
FUSION_JSON = "models/{dataset}/{replicate}fusion.json"
RECORD = "results/{dataset}/{replicate}predictions/{target}.npz"
RESULT = "results/{dataset}/{target}_{arch}.json"
REPORT = config["report"]  # reports/all.html unless the config names its own

# What names one job of each rule: its log is logs/<rule>/<this>.log, its benchmark (for the
# rules that have one) benchmarks/<rule>/<this>.tsv, which the report reads back by rule.
JOB_NAMES = {
    "generate_demo": "{dataset}",
    "build_manifest": "{dataset}",
    "prepare_faces": "{dataset}",
    "train_model": "{dataset}/{replicate}{model}{fold}",
    "pair_models": "{dataset}/{replicate}fusion",
    "infer_record": "{dataset}/{replicate}{target}",
    "evaluate_cell": "{dataset}/{target}_{arch}",
    "render_report": Path(REPORT).stem,  # all, or the config's own report's name
}
LOGS = {rule: f"logs/{rule}/{name}.log" for rule, name in JOB_NAMES.items()}
BENCHMARKS = {rule: f"benchmarks/{rule}/{name}.tsv" for rule, name in JOB_NAMES.items()}


def fill(pattern, jobs):
    """`pattern` filled in with each job's wildcards."""
    return [pattern.format(**job) for job in jobs]


def prepared_datasets():
    """Every data set that is prepared: the trained ones and their targets."""
    names = set(config["train_on"])
    for d in config["train_on"]:
        names.update(config["targets"].get(d, [d]))
    return sorted(names)


def model_jobs(dataset=None, model=None, replicate=None):
    """Wildcards of every train_model job (of one data set, model or replicate, if given)."""
    return [
        {"dataset": d, "replicate": rep, "model": m, "fold": f}
        for d in ([dataset] if dataset else config["train_on"])
        for _, rep in replicates(d)
        if replicate is None or rep == replicate
        for m in ([model] if model else MODELS)
        for f in folds(d)
    ]


def fusion_searched():
    """Whether the fused cells choose a weight on the validation rows (their records needed)."""
    return config["evaluate"]["fusion_search"] and "fused" in config["archs"]


def record_jobs():
    """Wildcards of every infer_record job: one record per (trained set, replicate, target),
    and one of the trained set's validation rows where the fused weight is searched."""
    extra = [VALIDATION] if fusion_searched() else []
    return [
        {"dataset": d, "replicate": rep, "target": t}
        for d in config["train_on"]
        for _, rep in replicates(d)
        for t in [*config["targets"].get(d, [d]), *extra]
    ]


def cell_jobs():
    """Wildcards of every table cell (evaluate_cell job)."""
    return [
        {"dataset": d, "target": t, "arch": a}
        for d in config["train_on"]
        for t in config["targets"].get(d, [d])
        for a in config["archs"]
    ]


def pair_jobs():
    return [
        {"dataset": d, "replicate": rep}
        for d in config["train_on"]
        for _, rep in replicates(d)
    ]


def checkpoints(dataset, model, replicate=""):
    """The checkpoint(s) of one trained model: one per fold for a k-fold data set."""
    return fill(CHECKPOINT, model_jobs(dataset, model, replicate))


def records(dataset, target):
    """The prediction records of (trained set, target): one per replicate seed."""
    jobs = [
        {"dataset": dataset, "replicate": rep, "target": target}
        for _, rep in replicates(dataset)
    ]
    return fill(RECORD, jobs)


def trained_models(wildcards=None):
    return fill(CHECKPOINT, model_jobs())


def histories(wildcards=None):
    return fill(HISTORY, model_jobs())


def predictors(wildcards=None):
    """models/{dataset}/{replicate}fusion.json of every trained pair: what `fer predict
    --models` reads."""
    return fill(FUSION_JSON, pair_jobs())


def all_results(wildcards=None):
    return fill(RESULT, cell_jobs())


def prepared_summaries(wildcards=None):
    jobs = [{"dataset": d} for d in prepared_datasets()]
    return fill(f"{PREPARED}/summary.json", jobs)


def cells_json():
    """The report's cell list: each cell's wildcards, result path and whether it is within."""
    return json.dumps(
        [
            job
            | {"path": RESULT.format(**job), "within": job["dataset"] == job["target"]}
            for job in cell_jobs()
        ]
    )


def expected_benchmarks():
    """Benchmark files of the jobs behind the report (those present are read at run time)."""
    jobs = {
        "prepare_faces": [{"dataset": d} for d in prepared_datasets()],
        "train_model": model_jobs(),
        "infer_record": record_jobs(),
        "evaluate_cell": cell_jobs(),
    }
    return " ".join(
        path for rule, each in jobs.items() for path in fill(BENCHMARKS[rule], each)
    )
