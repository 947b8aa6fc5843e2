"""``fer check-config FILE...``: is a workflow config right? Every problem at once, each one line
with its file, line and key path: YAML syntax, the schema (unknown keys with a "did you mean",
wrong types, values out of range, recipe keys), and the rules across keys (``train_on`` and
``targets`` naming declared data sets, registered adapters, ``init_from`` and ``reference``
recipes that can work, the fusion weights).

The workflow runs the same checks (:func:`problems`) when it plans, on the config Snakemake
merged; several FILEs here are merged the same way (later files update earlier ones, key by key,
as ``--configfile base.yaml overlay.yaml`` does).

A config is parsed with limits (docs/safety.md, rule 4): a regular file of at most 1 MiB, nested
at most :data:`MAX_DEPTH` levels, holding at most :data:`MAX_VALUES` values once its YAML aliases
are expanded (an "alias bomb" of a few lines would otherwise expand to billions when the
workflow validates and hashes it). The workflow checks the same limits at planning.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fer import cliargs
from fer.errors import FerError
from fer.paths import read_small

MAX_DEPTH = 64
MAX_VALUES = 100_000


def structure_problem(data, where: str) -> str | None:
    """Why a parsed config is refused (too deep, or too many values with aliases expanded: each
    appearance of a shared node counts, as a reader that walks it sees it), else None. Walks at
    most :data:`MAX_VALUES` nodes, whatever the aliases would expand to."""
    stack, seen = [(data, 0)], 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return (
                f"{where}: more than {MAX_VALUES:,} values (YAML aliases expanded, as the "
                "workflow reads them); refused"
            )
        if depth > MAX_DEPTH:
            return f"{where}: nested more than {MAX_DEPTH} levels deep; refused"
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list | tuple):
            stack.extend((v, depth + 1) for v in node)
    return None


def yaml_error(path: str | Path) -> str | None:
    """``"FILE:LINE:COLUMN: problem"`` for a file that is not a YAML mapping within the limits,
    else None."""
    import yaml

    try:
        text = read_small(path, what="config")
    except FerError as exc:
        return str(exc)
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        return f"{path}: nested too deeply to parse; refused"
    except yaml.MarkedYAMLError as exc:
        # an unclosed quote or bracket is noticed lines later: lead with where it opened
        start, end = exc.context_mark, exc.problem_mark
        mark = start or end
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = exc.problem or exc.context
        if start and end and exc.context and (start.line, start.column) != (end.line, end.column):
            what = f"{exc.context}, {exc.problem} at line {end.line + 1}, column {end.column + 1}"
        return f"{where}: {what} (not valid YAML)"
    except yaml.YAMLError as exc:
        return f"{path}: not valid YAML ({exc})"
    if not isinstance(data, dict):
        return (
            f"{path}:1:1: expected a mapping of config keys at the top, got {type(data).__name__}"
        )
    return structure_problem(data, str(path))


SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
VALIDATION = "validation"  # the record of a trained set's validation rows: a reserved name
RENAMED = {  # preprocess keys of older fer versions: the key now, and what it is
    "face_size": ("chip_size", "the stored chip's side; a model's input side"),
    "roi_size": ("crop_size", "the stored ROI crops' side; the Global-ROI Net's input side"),
}


def load_schema(path: str | Path = SCHEMA) -> dict:
    """The workflow config's JSON-Schema with the recipe block put in
    (:func:`fer.train.recipe.json_schema`: each recipe key is declared once, there)."""
    import yaml

    from fer.train import recipe

    path = Path(path)
    if not path.is_file():
        raise FerError(
            f"{path}: the workflow's config schema is not there (fer check-config reads it from "
            "the workflow checkout fer is installed from; give --schema "
            "workflow/schemas/config.schema.yaml)"
        )
    schema = yaml.safe_load(path.read_text())
    schema["$defs"]["recipe"] = recipe.json_schema()
    return schema


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def schema_problems(cfg: dict, schema: dict) -> list[tuple[tuple, str]]:
    """(key path, problem) of every schema violation; an unknown key names the closest known."""
    import difflib

    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path]):
        path = tuple(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = list(err.schema.get("properties", {}))
            for extra in sorted(set(err.instance) - set(known)):
                near = difflib.get_close_matches(str(extra), known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else f"; known: {', '.join(known)}"
                out.append(((*path, extra), f"unknown key{hint}"))
        else:
            out.append((path, err.message))
    return out


def merged_recipe(cfg: dict, dataset: str, model: str) -> dict:
    """defaults, then defaults_<model>, then recipes.<dataset>.<model> (the workflow's merge)."""
    train = cfg.get("train") or {}
    merged = {**(train.get("defaults") or {}), **(train.get(f"defaults_{model}") or {})}
    merged.update(((train.get("recipes") or {}).get(dataset) or {}).get(model) or {})
    return merged


def rule_problems(cfg: dict, recipes: bool = True) -> list[tuple[tuple, str]]:
    """(key path, problem) of every rule across keys that the schema cannot state; ``recipes``:
    also each merged recipe as `fer train` checks it (once the schema found its keys right)."""
    from fer.contracts import MODELS
    from fer.data import get_adapter, list_datasets
    from fer.fusion import Fusion

    out = []
    datasets = cfg["datasets"]
    names = sorted(datasets)
    for i, name in enumerate(cfg["train_on"]):
        if name not in datasets:
            out.append((("train_on", i), f"{name!r} is not a key of datasets ({names})"))
    for name, targets in cfg["targets"].items():
        if name not in cfg["train_on"]:
            out.append((("targets", name), f"{name!r} is not in train_on"))
        for i, target in enumerate(targets):
            if target not in datasets:
                out.append((("targets", name, i), f"{target!r} is not a key of datasets"))
        if (datasets.get(name) or {}).get("kfold") and targets != [name]:
            out.append((("targets", name), "a k-fold data set is evaluated on itself only"))
    if VALIDATION in datasets:
        out.append(
            (
                ("datasets", VALIDATION),
                "the name is taken (results/<set>/predictions/validation.npz)",
            )
        )
    for name, entry in datasets.items():
        adapter = entry.get("adapter", name)
        if adapter not in list_datasets():
            known = ", ".join(list_datasets())
            out.append(
                (("datasets", name, "adapter"), f"{adapter!r} is not registered; known: {known}")
            )
        if not entry.get("generate") and not entry.get("root"):
            out.append(
                (("datasets", name), "needs root (where the data set lives) or generate: true")
            )
    for old, (new, what) in RENAMED.items():
        if old in (cfg.get("preprocess") or {}):
            out.append(
                (("preprocess", old), f"now preprocess.{new} ({what} is its recipe's {old})")
            )
    try:
        Fusion.from_config(cfg.get("evaluate") or {})
    except FerError as exc:
        out.append((("evaluate",), f"fusion_roi, fusion_global: {exc}"))
    if recipes:
        out += _recipe_problems(cfg)
    for name in cfg["train_on"]:
        if name not in datasets:
            continue
        seeds = datasets[name].get("seeds") or cfg.get("seeds") or [None]
        for model in MODELS:
            recipe = merged_recipe(cfg, name, model)
            where = ("train", "recipes", name, model)
            source = recipe.get("init_from")
            if source is not None:
                if source not in datasets:
                    out.append(((*where, "init_from"), f"{source!r} is not a key of datasets"))
                elif source == name:
                    out.append(((*where, "init_from"), "names the data set itself"))
                elif datasets[source].get("kfold"):
                    out.append(
                        (
                            (*where, "init_from"),
                            f"{source!r} is a k-fold set (one model per fold); name a set with "
                            "a test split",
                        )
                    )
                else:
                    up = datasets[source].get("seeds") or cfg.get("seeds") or [None]
                    if len(up) > 1 and not set(seeds) <= set(up):
                        out.append(
                            (
                                (*where, "init_from"),
                                f"{source!r} has replicate seeds {sorted(up)}, {name} seeds "
                                f"{seeds}: give both sets the same seeds, or the source one",
                            )
                        )
            if recipe.get("reference"):
                why = []
                if datasets[name].get("kfold"):
                    why.append("a k-fold set has one model per fold, the authors' file is one")
                if len(seeds) > 1:
                    why.append("the authors' file is one model; it has no replicate seeds")
                if source is not None:
                    why.append("a model is either imported (reference) or fine-tuned (init_from)")
                adapter = datasets[name].get("adapter", name)
                known = adapter in list_datasets() and get_adapter(adapter).reference_order
                if not recipe.get("reference_classes") and not known:
                    why.append(
                        f"the reference code gives no class order for {adapter}'s models; state "
                        "the head's order with reference_classes: [...]"
                    )
                out += [((*where, "reference"), w) for w in why]
    return out


def _recipe_problems(cfg: dict) -> list[tuple[tuple, str]]:
    """Each recipe layer as `fer train` checks it (what the schema cannot say, e.g. milestones
    strictly increasing), at the most general layer that shows the problem: ``train.defaults``,
    then ``defaults_<model>`` over it, then each trained set's merged recipe."""
    from fer.contracts import MODELS
    from fer.train.recipe import WORKFLOW_KEYS, Recipe

    train = cfg.get("train") or {}
    layers = [(("train", "defaults"), train.get("defaults") or {})]
    for model in MODELS:
        layers.append(
            (
                ("train", f"defaults_{model}"),
                merged_recipe({"train": {**train, "recipes": {}}}, "", model),
            )
        )
    layers += [
        (("train", "recipes", name, model), merged_recipe(cfg, name, model))
        for name in cfg["train_on"]
        for model in MODELS
    ]
    out, seen = [], set()
    for path, recipe in layers:
        plain = {k: v for k, v in recipe.items() if k not in WORKFLOW_KEYS}
        try:
            Recipe.from_dict(plain, "recipe")
        except FerError as exc:
            text = str(exc).removeprefix("recipe: ")
            if text not in seen:
                seen.add(text)
                out.append((path, text))
    return out


def problems(
    cfg, schema: dict, files: list[tuple[str, str]] = (), overrides: dict | None = None
) -> list[str]:
    """Every problem of a parsed (merged) config, one line each: where the key was set (the
    file and line among ``files`` ((path, text), later ones winning), or ``--config`` for
    Snakemake's command-line ``overrides``), then the key path."""
    problem = structure_problem(cfg, "the config")  # first: never walk an alias bomb
    if problem:
        return [problem]
    if not isinstance(cfg, dict):
        return [f"the config: expected a mapping of config keys, got {type(cfg).__name__}"]
    renamed = {("preprocess", old) for old in RENAMED}  # said better by the rules
    found = [(path, text) for path, text in schema_problems(cfg, schema) if path not in renamed]
    recipes_typed = not any(path[:1] == ("train",) for path, _ in found)
    try:  # the rules read keys the schema types; where those are wrong, the schema said so
        found += rule_problems(cfg, recipes=recipes_typed)
    except (AttributeError, KeyError, TypeError):
        if not found:
            raise
    return [f"{_place(path, files, overrides)}{_key(path)}: {text}" for path, text in found]


def _place(path: tuple, files, overrides: dict | None) -> str:
    """``--config: `` where the command line set ``path``, else ``FILE:LINE: `` of the last
    file that holds it, else nothing."""
    if overrides and path and _holds(overrides, path):
        return "--config: "
    for name, text in reversed(list(files)):
        mark = _mark(text, path)
        if mark is not None:
            return f"{name}:{mark.line + 1}: "
    return ""


def _holds(data, path: tuple) -> bool:
    """Whether the parsed ``data`` has the key or item ``path``."""
    for part in path:
        if isinstance(data, dict) and str(part) in data:
            data = data[str(part)]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True


def _mark(text: str, path: tuple):
    """The start of the key (or item) ``path`` names in the YAML ``text``, None where the text
    does not hold it (a value from another file or the command line)."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    mark = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                return None
            mark, node = match[0][0].start_mark, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return None
            node = node.value[part]
            mark = node.start_mark
        else:
            return None
    return mark


def merged(configs: list[dict]) -> dict:
    """Later configs update earlier ones key by key, into nested mappings (Snakemake's merge of
    several ``--configfile`` files)."""
    out: dict = {}
    for cfg in configs:
        _update(out, cfg)
    return out


def _update(base: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _update(base[k], v)
        else:
            base[k] = v


def main(argv: list[str] | None = None) -> int:
    import yaml

    p = cliargs.parser("fer check-config", __doc__.split("\n\n")[0])
    p.add_argument(
        "files", nargs="+", type=Path, help="workflow config files (YAML or JSON), merged in order"
    )
    p.add_argument(
        "--schema",
        type=Path,
        default=SCHEMA,
        help="the workflow's config schema (default: the checkout's workflow/schemas/...)",
    )
    args = p.parse_args(argv)
    found, texts = [], []
    for path in args.files:
        problem = yaml_error(path)
        if problem:
            found.append(problem)
        else:
            texts.append((str(path), read_small(path, what="config")))
    if not found:
        cfg = merged([yaml.safe_load(text) for _, text in texts])
        found = problems(cfg, load_schema(args.schema), texts)
    if found:
        for line in found[:-1]:
            print(f"error: {line}", file=sys.stderr)
        raise FerError(found[-1] + (f" ({len(found)} problems)" if len(found) > 1 else ""))
    names = " + ".join(map(str, args.files))
    print(f"{names}: valid (YAML, schema and the rules across keys)")
    return 0
