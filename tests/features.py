"""One workflow config that exercises the workflow's features together, so that the test suite
pays for one full run instead of one per feature (tests/conftest.py's ``features_run``):

* ``demo``: the synthetic demo with three replicate seeds (mean ± std, paired tests, the fusion
  weight chosen per seed; the report's evidence in a browser);
* ``authors``: the demo's data again, its two models imported from reference-format checkpoint
  files (``reference:`` recipes) instead of trained;
* ``mine`` (where the real faces are at hand): CK+48 faces laid out as a user's own train/test
  class folders, folder names in other spellings, subjects in the file names;
* ``ckplus`` (likewise): CK+48 in subject-grouped 3-fold cross-validation, one model per fold.

Every training is tiny: the runs test the paths, not the accuracy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from fer.labels import CANONICAL

TINY = {  # every set's recipe unless its own says otherwise
    "epochs": 2,
    "batch_size": 16,
    "lr": 0.01,
    "milestones": [1],
    "samples_per_class": 12,
    "face_size": 32,
    "roi_size": 16,
    "augment": "none",
    "weights": "none",
    "workers": 0,
}
SPELLED = {"happy": "Happiness", "surprise": "surprised", "sadness": "Sad", "anger": "joy"}


def class_folders(ckplus48: Path, root: Path) -> Path:
    """CK+48 faces as a user's own ``train/<class>/`` and ``test/<class>/`` folders: four
    classes in other spellings (``joy`` holds anger: the config maps it), about 24 faces each,
    the last four subjects of each class in test."""
    for source, folder in SPELLED.items():
        files = sorted((ckplus48 / source).glob("*.png"))
        subjects = sorted({f.name.split("_")[0] for f in files})
        test_subjects = set(subjects[-4:])
        for f in files[:: max(1, len(files) // 24)]:
            split = "test" if f.name.split("_")[0] in test_subjects else "train"
            (root / split / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, root / split / folder / f.name)
    return root


def write_config(work: Path, shared_data: Path | None) -> dict:
    """Write ``work/features.yaml`` (see the module docstring) and return it. Without the real
    faces (``shared_data`` None) the config holds the synthetic sets only."""
    from tests.test_reference_import import make_reference

    authors = work / "authors"
    authors.mkdir(parents=True, exist_ok=True)
    roi, _ = make_reference(authors, arch="roi", classes=7)
    glob, _ = make_reference(authors, arch="global", classes=7, dp=True)
    seven = list(CANONICAL[:7])
    cfg = {
        "title": "fer workflow features (SYNTHETIC and real faces)",
        "demo": {"seed": 0, "subjects": 12, "images_per_class": 3, "test_subjects": 3},
        "datasets": {
            "demo": {"adapter": "demo", "generate": True, "val_fraction": 0.2, "seeds": [0, 1, 2]},
            "authors": {"adapter": "demo", "generate": True, "val_fraction": 0.2},
        },
        "train_on": ["demo", "authors"],
        "targets": {"demo": ["demo"], "authors": ["authors"]},
        "preprocess": {"chip_size": 64, "crop_size": 24},
        "train": {
            "defaults": dict(TINY),
            "recipes": {
                "demo": {m: {"epochs": 3, "milestones": [2]} for m in ("global", "roi")},
                "authors": {
                    "roi": {"reference": str(roi), "reference_classes": seven},
                    "global": {"reference": str(glob), "reference_classes": seven},
                },
            },
        },
        "evaluate": {"bootstrap": 200},
    }
    if shared_data is not None:
        ckplus48 = shared_data / "ckplus48"
        mine = class_folders(ckplus48, work / "my-faces")
        cfg["datasets"] |= {
            "mine": {
                "adapter": "folders",
                "root": str(mine),
                "detector": "none",
                "options": {"classes": {"joy": "anger"}, "group_pattern": "^(S\\d+)_"},
            },
            "ckplus": {"root": str(ckplus48), "detector": "none", "kfold": 3},
        }
        cfg["train_on"] += ["mine", "ckplus"]
        cfg["targets"] |= {"mine": ["mine"], "ckplus": ["ckplus"]}
        cfg["train"]["recipes"]["ckplus"] = {
            m: {"epochs": 1, "max_steps_per_epoch": 2, "samples_per_class": 10}
            for m in ("global", "roi")
        }
    (work / "features.yaml").write_text(yaml.safe_dump(cfg))
    return cfg
