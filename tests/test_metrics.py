"""fer.evaluate.metrics against confusion matrices worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fer.evaluate import metrics

# 3 classes, 9 images. By hand:
#   true 0 → predicted 0, 1, 0     row [2, 1, 0]
#   true 1 → predicted 1, 2        row [0, 1, 1]
#   true 2 → predicted 2, 2, 0, 2  row [1, 0, 3]
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 0, 2]
CM = [[2, 1, 0], [0, 1, 1], [1, 0, 3]]


def test_confusion_matrix_counts_rows_true_columns_predicted():
    assert metrics.confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == CM
    assert metrics.confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="outside"):
        metrics.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="labels"):
        metrics.confusion_matrix([0, 1], [0], 3)


def test_hand_computed_three_class_metrics():
    cm = np.array(CM)
    assert metrics.accuracy(cm) == pytest.approx(6 / 9)
    assert metrics.recalls(cm) == pytest.approx([2 / 3, 1 / 2, 3 / 4])
    assert metrics.precisions(cm) == pytest.approx([2 / 3, 1 / 2, 3 / 4])
    # F1 = 2TP / (2TP + FP + FN): 4/6, 2/4, 6/8
    assert metrics.f1_scores(cm) == pytest.approx([4 / 6, 2 / 4, 6 / 8])
    assert metrics.mean_class_accuracy(cm) == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
    assert metrics.macro_f1(cm) == pytest.approx((4 / 6 + 2 / 4 + 6 / 8) / 3)


def test_undefined_ratios_are_none_and_left_out_of_means():
    # true [0, 0, 1, 1], always predicted 0; class 2 is neither true nor predicted.
    cm = metrics.confusion_matrix([0, 0, 1, 1], [0, 0, 0, 0], 3)
    assert cm.tolist() == [[2, 0, 0], [2, 0, 0], [0, 0, 0]]
    assert metrics.precisions(cm) == [0.5, None, None]
    assert metrics.recalls(cm) == [1.0, 0.0, None]
    assert metrics.f1_scores(cm) == pytest.approx([4 / 6, 0.0, None])
    assert metrics.mean_class_accuracy(cm) == pytest.approx(0.5)
    assert metrics.macro_f1(cm) == pytest.approx((4 / 6 + 0.0) / 2)
    assert metrics.accuracy(np.zeros((2, 2), int)) is None


def test_per_class_names_and_support():
    out = metrics.per_class(np.array(CM), ["happy", "sad", "anger"])
    assert list(out) == ["happy", "sad", "anger"]
    assert out["anger"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    assert out["happy"]["support"] == 3 and out["sad"]["precision"] == 0.5
    with pytest.raises(ValueError):
        metrics.per_class(np.array(CM), ["happy"])


def test_bootstrap_interval_brackets_accuracy_and_is_seeded():
    ci = metrics.bootstrap_ci(150, 200, n_boot=2000, seed=3)
    assert ci[0] < 0.75 < ci[1] and 0.0 <= ci[0] and ci[1] <= 1.0
    assert ci == metrics.bootstrap_ci(150, 200, n_boot=2000, seed=3)
    wide = metrics.bootstrap_ci(15, 20, n_boot=2000, seed=3)
    assert wide[1] - wide[0] > ci[1] - ci[0]
    assert metrics.bootstrap_ci(20, 20, 500) == [1.0, 1.0]
    assert metrics.bootstrap_ci(0, 0) is None and metrics.bootstrap_ci(5, 10, n_boot=0) is None


def test_bootstrap_matches_explicit_resampling_of_images():
    """The binomial shortcut gives the same interval as resampling images with replacement."""
    correct = np.r_[np.ones(150, bool), np.zeros(50, bool)]
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(correct), (4000, len(correct)))
    explicit = np.percentile(correct[draws].mean(axis=1), [2.5, 97.5])
    ci = metrics.bootstrap_ci(150, 200, n_boot=4000, seed=1)
    assert ci == pytest.approx(explicit, abs=0.011)


def test_summarize_has_every_headline_field():
    out = metrics.summarize(Y_TRUE, Y_PRED, ["a", "b", "c"], n_boot=100, seed=0)
    assert out["n_images"] == 9 and out["confusion_matrix"] == CM
    assert out["accuracy"] == pytest.approx(6 / 9)
    assert len(out["accuracy_ci95"]) == 2 and set(out["per_class"]) == {"a", "b", "c"}
    assert isinstance(out["confusion_matrix"][0][0], int)


def test_fold_summary_mean_and_sample_std():
    mean, std = metrics.fold_summary([0.9, 1.0, 0.95])
    assert mean == pytest.approx(0.95) and std == pytest.approx(0.05)
    assert metrics.fold_summary([0.8]) == (0.8, 0.0)
    assert metrics.fold_summary([]) == (None, None)


def test_ferplus_majority_and_any_vote_accuracies():
    # 3 classes; votes per image; majority labels y.
    votes = [[6, 4, 0], [0, 2, 8], [5, 0, 5], [0, 10, 0]]
    y = [0, 2, 0, 1]
    pred = [1, 2, 1, 1]  # wrong (1 vote), right, wrong (0 votes), right
    out = metrics.ferplus_accuracies(y, pred, votes)
    assert out == {"majority_accuracy": 0.5, "any_vote_accuracy": 0.75, "n": 4}
    assert metrics.ferplus_accuracies([], [], np.zeros((0, 3)))["majority_accuracy"] is None
