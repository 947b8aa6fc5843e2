"""The recipe: each key declared once in fer/train/recipe.py, and everything that follows from it
(the --recipe validation, the workflow schema's recipe block, config/README.md, --help)."""

from __future__ import annotations

import jsonschema
import pytest

from fer.errors import FerError
from fer.train.recipe import (
    WORKFLOW_KEYS,
    Recipe,
    config_keys,
    help_text,
    json_schema,
    key_specs,
    markdown_table,
)
from tests.conftest import REPO


def test_recipe_defaults_are_reference_ish():
    r = Recipe.from_json("")
    assert (r.momentum, r.weight_decay, r.label_smoothing) == (0.9, 1e-4, 0.1)
    assert r.loss_weights == (1.0, 0.6, 1.0) and r.balanced_sampler and r.selection == "val"


def test_recipe_round_trips_and_coerces():
    r = Recipe.from_json('{"epochs": 3, "lr": 1, "milestones": [1, 2], "samples_per_class": null}')
    assert r.lr == 1.0 and isinstance(r.lr, float) and r.milestones == (1, 2)
    assert Recipe.from_dict(r.to_dict()) == r
    assert r.fingerprint() == r.replace(dataset="x", workers=0).fingerprint()
    assert r.fingerprint() != r.replace(seed=1).fingerprint()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"epochs": 2, "learning_rate": 0.1}', "learning_rate"),
        ('{"epochs": "3"}', "'epochs'"),
        ('{"epochs": true}', "'epochs'"),
        ('{"loss": "mse"}', "'loss'"),
        ('{"milestones": [5, 5]}', "'milestones'"),
        ('{"loss_weights": [1, 1]}', "'loss_weights'"),
        ('{"lr": -1}', "'lr'"),
        ('{"lr": 0}', "'lr'"),
        ('{"samples_per_class": 0}', "'samples_per_class'"),
        ('{"face_size": 4}', "'face_size'"),
        ('{"val_fraction": 0.6}', "'val_fraction'"),
        ('{"init_from": "rafdb"}', "workflow config only"),
        ('{"augment": true}', "true is now 'reference', false 'none'"),
        ('{"schedule": "step"}', "'schedule'"),
        ('{"optimizer": "adam"}', "'optimizer'"),
        ('{"mixup_alpha": -0.2}', "'mixup_alpha'"),
        ('{"ema_decay": 1}', "'ema_decay'"),
        ('{"tta": "crops"}', "'tta'"),
        ('{"epochs": 3, "warmup_epochs": 3}', "fewer than epochs (3)"),
        ('{"warmup_epochs": 10, "milestones": [10, 20]}', "epochs after the warm-up"),
        ('{"epochs": 2,', "not valid JSON"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_recipe_rejects_bad_input_naming_the_key(text, needle):
    with pytest.raises(FerError, match="--recipe") as err:
        Recipe.from_json(text)
    assert needle in str(err.value)


def test_an_unknown_key_suggests_the_nearest():
    with pytest.raises(FerError, match=r"unknown recipe key 'epochz' \(did you mean 'epochs'\?\)"):
        Recipe.from_dict({"epochz": 3}, "train.defaults")


def _violations(spec):
    """Values that break one key's declared rules (type, bounds, choices, length)."""
    bad = [{"integer": 1.5, "number": "x", "boolean": 1, "string": 3}[spec.kind]]
    if spec.length is not None:
        bad = [5, ["x"]] + ([[0] * (spec.length + 1)] if spec.length > 0 else [])
    if spec.minimum is not None:
        below = spec.minimum if spec.open_below else spec.minimum - 1
        bad.append([below] if spec.length is not None else below)
    if spec.maximum is not None:
        above = spec.maximum if spec.open_above else spec.maximum + 0.5
        bad.append([above] if spec.length is not None else above)
    if spec.choices:
        bad.append("nonsense")
    if not spec.nullable:
        bad.append(None)
    return bad


@pytest.mark.parametrize("spec", config_keys(), ids=lambda s: s.name)
def test_schema_and_recipe_agree_on_every_key(spec):
    """The generated schema block and Recipe's validation accept and refuse the same values."""
    validator = jsonschema.Draft202012Validator(json_schema())
    default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    assert validator.is_valid({spec.name: default})
    Recipe.from_dict({spec.name: default})
    for value in _violations(spec):
        assert not validator.is_valid({spec.name: value}), value
        with pytest.raises(FerError, match=repr(spec.name)):
            Recipe.from_dict({spec.name: value})


def test_the_schema_lists_exactly_the_config_keys():
    props = json_schema()["properties"]
    assert list(props) == [s.name for s in config_keys()] + list(WORKFLOW_KEYS)
    assert all(p["description"] for p in props.values())
    assert {"dataset", "config_hash"} <= set(key_specs()) - set(props)  # set by the workflow


def test_config_readme_holds_the_generated_table():
    """config/README.md's recipe table is markdown_table() verbatim (`make docs` rewrites it)."""
    text = (REPO / "config" / "README.md").read_text()
    assert markdown_table() in text, "config/README.md is stale: run `make docs`"


def test_help_and_docstring_list_every_key():
    text = help_text()
    doc = Recipe.__doc__ or ""
    for spec in key_specs().values():
        assert f"{spec.name}:" in doc
        if not spec.workflow_sets:
            assert f"  {spec.name} " in text
