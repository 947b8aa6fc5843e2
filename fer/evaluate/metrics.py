"""Classification metrics for evaluation, in pure numpy (no torch, no scikit-learn).

Everything is computed from a confusion matrix ``cm`` with rows = true class and columns =
predicted class, counted over one ordered class list. Undefined ratios (0/0, e.g. the precision of
a class that is never predicted) are ``None``, never a silent 0, so the result JSON stays honest.

Conventions (the same as scikit-learn's defaults where one exists):

* accuracy = trace / total;
* mean class accuracy = mean recall over classes with support > 0;
* per-class F1 = 2·TP / (2·TP + FP + FN) (the harmonic mean of precision and recall, and 0 when
  a class is predicted or present but never hit); macro-F1 = mean F1 over the classes that occur
  in the true or the predicted labels (scikit-learn's ``f1_score(average="macro")`` without
  ``labels=``);
* the 95 % interval of accuracy is a percentile bootstrap over images. Resampling n images with
  replacement from a set with k correct gives a Binomial(n, k/n) count of correct ones, so the
  bootstrap is drawn exactly and cheaply from that binomial.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts ``cm[t, p]`` of images of true class ``t`` predicted as ``p`` (int64, n×n)."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} holds class indices outside 0..{n_classes - 1}")
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def accuracy(cm: np.ndarray) -> float | None:
    """Fraction of images on the diagonal; ``None`` for an empty matrix."""
    cm = np.asarray(cm)
    return _ratio(np.trace(cm), cm.sum())


def recalls(cm: np.ndarray) -> list[float | None]:
    """Per-class recall TP / support (``None`` where the class has no image)."""
    cm = np.asarray(cm)
    return [_ratio(cm[i, i], cm[i].sum()) for i in range(len(cm))]


def precisions(cm: np.ndarray) -> list[float | None]:
    """Per-class precision TP / predicted (``None`` where the class is never predicted)."""
    cm = np.asarray(cm)
    return [_ratio(cm[i, i], cm[:, i].sum()) for i in range(len(cm))]


def f1_scores(cm: np.ndarray) -> list[float | None]:
    """Per-class F1 = 2TP / (2TP + FP + FN); ``None`` where a class is never true nor predicted."""
    cm = np.asarray(cm)
    out = []
    for i in range(len(cm)):
        tp = cm[i, i]
        fp, fn = cm[:, i].sum() - tp, cm[i].sum() - tp
        out.append(_ratio(2 * tp, 2 * tp + fp + fn))
    return out


def mean_class_accuracy(cm: np.ndarray) -> float | None:
    """Unweighted mean of the recalls of the classes that have images (balanced accuracy)."""
    vals = [r for r in recalls(cm) if r is not None]
    return float(np.mean(vals)) if vals else None


def macro_f1(cm: np.ndarray) -> float | None:
    """Unweighted mean F1 over the classes present in the true or the predicted labels."""
    vals = [f for f in f1_scores(cm) if f is not None]
    return float(np.mean(vals)) if vals else None


def per_class(cm: np.ndarray, classes: Sequence[str]) -> dict[str, dict]:
    """``{name: {precision, recall, f1, support}}`` in the order of ``classes``."""
    cm = np.asarray(cm)
    if len(classes) != len(cm):
        raise ValueError(f"{len(classes)} class names for a {len(cm)}×{len(cm)} matrix")
    rows = zip(classes, precisions(cm), recalls(cm), f1_scores(cm), cm.sum(axis=1), strict=True)
    return {
        name: {"precision": p, "recall": r, "f1": f, "support": int(s)} for name, p, r, f, s in rows
    }


def bootstrap_ci(
    n_correct: int, n: int, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> list[float] | None:
    """Percentile bootstrap interval ``[lo, hi]`` of accuracy over images (``None`` if n or
    n_boot is 0). Exact resampling via Binomial(n, n_correct/n); deterministic from ``seed``."""
    if n <= 0 or n_boot <= 0:
        return None
    if not 0 <= n_correct <= n:
        raise ValueError(f"n_correct={n_correct} outside 0..{n}")
    rng = np.random.default_rng(seed)
    acc = rng.binomial(n, n_correct / n, size=n_boot) / n
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(acc, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def summarize(y_true, y_pred, classes: Sequence[str], n_boot: int = 1000, seed: int = 0) -> dict:
    """Every headline metric of one prediction set over ``classes`` (indices into it).

    Returns ``{n_images, accuracy, accuracy_ci95, mean_class_accuracy, macro_f1, per_class,
    confusion_matrix}`` with plain Python types, ready for JSON.
    """
    cm = confusion_matrix(y_true, y_pred, len(classes))
    n = int(cm.sum())
    return {
        "n_images": n,
        "accuracy": accuracy(cm),
        "accuracy_ci95": bootstrap_ci(int(np.trace(cm)), n, n_boot, seed),
        "mean_class_accuracy": mean_class_accuracy(cm),
        "macro_f1": macro_f1(cm),
        "per_class": per_class(cm, classes),
        "confusion_matrix": cm.tolist(),
    }


def fold_summary(fold_accuracies: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single fold) of fold accuracies."""
    vals = np.asarray([a for a in fold_accuracies if a is not None], dtype=float)
    if vals.size == 0:
        return None, None
    std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
    return float(vals.mean()), std


def parse_votes(text: str, n: int = 8) -> np.ndarray:
    """One FERPlus ``votes`` cell ``"n0;…;n7"`` (canonical order) as a float array of length n."""
    parts = [p for p in str(text).split(";") if p.strip() != ""]
    if len(parts) != n:
        raise ValueError(f"votes {text!r}: expected {n} ';'-separated counts")
    return np.asarray([float(p) for p in parts], dtype=float)


def ferplus_accuracies(y_true, y_pred, votes) -> dict:
    """FERPlus's two accuracies, named apart.

    ``majority_accuracy``: prediction equals the majority-vote label ``y_true`` (the standard
    FERPlus metric). ``any_vote_accuracy``: the reference's lenient metric — the predicted class
    received at least one vote (``votes[i, y_pred[i]] > 0``). ``votes`` is n×C over the same class
    indices as the labels; ``None`` values for no images.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if len(y_pred) == 0:
        return {"majority_accuracy": None, "any_vote_accuracy": None, "n": 0}
    votes = np.asarray(votes, dtype=float).reshape(len(y_pred), -1)
    hit_any = votes[np.arange(len(y_pred)), y_pred] > 0
    return {
        "majority_accuracy": float(np.mean(y_true == y_pred)),
        "any_vote_accuracy": float(np.mean(hit_any)),
        "n": int(len(y_pred)),
    }
