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
  bootstrap is drawn exactly and cheaply from that binomial. Over S replicate seeds (the same
  images scored by S independently trained models) the images are resampled, each keeping all
  its S predictions, and the statistic is the seed-mean accuracy;
* paired comparisons of two archs on the same images (:func:`paired_difference`): the
  difference of accuracies, a percentile bootstrap interval resampling images (or whole
  subjects, where the set has them) with every arch's predictions of a unit kept together, and an
  exact two-sided test of "no difference": the sign-flip (randomisation) test on each unit's
  summed correctness difference over seeds, computed exactly. With one seed and images as units
  it is McNemar's exact test (:func:`mcnemar_exact`), which is also given per seed.
"""

from __future__ import annotations

import math
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
    return _percentiles(acc, level)


def _percentiles(values: np.ndarray, level: float) -> list[float]:
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def bootstrap_replicates(correct, n_boot: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap ``[lo, hi]`` of the seed-mean accuracy of ``correct`` (S seeds × n
    images, bool), resampling images with all their seeds (``None`` if n or n_boot is 0)."""
    correct = np.atleast_2d(np.asarray(correct, dtype=np.int64))
    n = correct.shape[1]
    if n == 0 or n_boot <= 0:
        return None
    per_image = correct.sum(axis=0)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(n_boot, n))
    return _percentiles(per_image[picks].sum(axis=1) / correct.size, level)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (a right & b wrong, a wrong &
    b right): ``min(1, 2 · P(Binomial(a_only + b_only, 1/2) <= min(a_only, b_only)))``."""
    m, k = int(a_only) + int(b_only), min(int(a_only), int(b_only))
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**m)


def _binomial_pmf(m: int) -> np.ndarray:
    i = np.arange(m + 1)
    logs = [math.lgamma(m + 1) - math.lgamma(j + 1) - math.lgamma(m - j + 1) for j in i]
    return np.exp(np.asarray(logs) - m * math.log(2.0))


def _convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) * len(b) <= 20_000_000:
        return np.convolve(a, b)
    size = len(a) + len(b) - 1
    out = np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)
    return np.clip(out, 0.0, None)


def sign_flip_p(unit_differences) -> float:
    """Exact two-sided p-value of the sign-flip test: under "a and b are exchangeable", each
    unit's integer difference ``d_j`` is +|d_j| or −|d_j| with probability 1/2, independently;
    p = P(|Σ ±|d_j|| >= |Σ d_j|). Units sharing one |d| form a binomial, so the null
    distribution is a convolution of a few binomials (FFT beyond 2·10⁷ products, where
    p-values under ~1e-12 lose precision)."""
    d = np.asarray(unit_differences, dtype=np.int64)
    observed = abs(int(d.sum()))
    if observed == 0:
        return 1.0
    values, counts = np.unique(np.abs(d[d != 0]), return_counts=True)
    dist = np.ones(1)  # P(T = t) at index t + offset
    for v, m in zip(values.tolist(), counts.tolist(), strict=True):
        spread = np.zeros(2 * v * m + 1)
        spread[:: 2 * v] = _binomial_pmf(m)  # v · (2B − m), B ~ Binomial(m, 1/2)
        dist = _convolve(dist, spread)
    offset = (len(dist) - 1) // 2
    t = np.abs(np.arange(len(dist)) - offset)
    return float(min(1.0, dist[t >= observed].sum()))


def paired_difference(
    correct_a, correct_b, groups=None, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Accuracy of a minus accuracy of b on the same images, with its uncertainty.

    ``correct_a`` / ``correct_b``: bool, S replicate seeds × n images (or n for one seed).
    ``groups``: a subject per image (resampling and sign flips then take whole subjects), or
    None (images). Returns ``{n, n_units, unit, seeds, accuracy_a, accuracy_b, difference,
    ci95, a_only, b_only, p_value, test, p_mcnemar}``: ``a_only`` / ``b_only`` count (image,
    seed) pairs only a (only b) got right; ``p_value`` is the exact sign-flip test over units
    (:func:`sign_flip_p`); ``p_mcnemar`` McNemar's exact test per seed over images.
    """
    a = np.atleast_2d(np.asarray(correct_a, dtype=bool))
    b = np.atleast_2d(np.asarray(correct_b, dtype=bool))
    if a.shape != b.shape:
        raise ValueError(f"correct_a {a.shape} and correct_b {b.shape} differ")
    n_seeds, n = a.shape
    d = a.sum(axis=0).astype(np.int64) - b.sum(axis=0)
    if groups is None:
        unit_d, unit_n, unit = d, np.ones(n, np.int64), "images"
    else:
        _, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        unit_d = np.bincount(inverse, weights=d).round().astype(np.int64)
        unit_n, unit = np.bincount(inverse).astype(np.int64), "subjects"
    ci = None
    if n and n_boot > 0:
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(unit_d), size=(n_boot, len(unit_d)))
        diffs = unit_d[picks].sum(axis=1) / (unit_n[picks].sum(axis=1) * n_seeds)
        ci = _percentiles(diffs, level)
    a_only = (a & ~b).sum(axis=1)
    b_only = (~a & b).sum(axis=1)
    seeds = "" if n_seeds == 1 else f", pooled over {n_seeds} seeds"
    exact = "mcnemar_exact" if unit == "images" and n_seeds == 1 else "sign_flip_exact"
    return {
        "n": int(n),
        "n_units": int(len(unit_d)),
        "unit": unit,
        "seeds": int(n_seeds),
        "accuracy_a": float(a.mean()) if n else None,
        "accuracy_b": float(b.mean()) if n else None,
        "difference": float(d.sum() / (n * n_seeds)) if n else None,
        "ci95": ci,
        "a_only": int(a_only.sum()),
        "b_only": int(b_only.sum()),
        "p_value": sign_flip_p(unit_d),
        "test": f"{exact} over {unit}{seeds}",
        "p_mcnemar": [mcnemar_exact(x, y) for x, y in zip(a_only, b_only, strict=True)],
    }


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
