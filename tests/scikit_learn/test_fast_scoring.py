"""Early stopping decodes and scores the validation set every epoch; bpfast.sklearn
does both without scikit-learn's per-call checks. Oracle: LabelBinarizer.inverse_transform
and accuracy_score themselves, on the same outputs and labels."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.metrics import accuracy_score  # noqa: E402

from bpfast.sklearn import MLPClassifier  # noqa: E402


@pytest.mark.parametrize("labels", [np.arange(4), np.array(["cat", "dog", "emu"]), np.array([2.0, -1.0, 7.0, 9.0, 11.0])])
@pytest.mark.parametrize("weighted", [False, True])
def test_decoded_labels_and_scores_are_scikit_learns(labels, weighted):
    rng = np.random.default_rng(len(labels))
    X = rng.standard_normal((60, 5))
    y = labels[rng.integers(0, len(labels), 60)]
    y[: len(labels)] = labels  # every class present
    clf = MLPClassifier(hidden_layer_sizes=(7,), max_iter=3, random_state=0)
    with pytest.warns(Warning):
        clf.fit(X, y)
    outputs = rng.random((40, len(labels)))
    outputs[3, :2] = outputs[3].max() + 1.0  # a tie: the first of the largest wins in both
    expected_labels = clf._label_binarizer.inverse_transform(outputs)
    decoded = clf._decode(outputs)
    assert decoded.dtype == expected_labels.dtype and np.array_equal(decoded, expected_labels)
    truth = labels[rng.integers(0, len(labels), 40)]
    weights = rng.uniform(0.1, 3.0, 40) if weighted else None
    score = clf._score_function(truth, decoded, sample_weight=weights)
    assert type(score) is float
    assert score == accuracy_score(truth, expected_labels, sample_weight=weights)


def test_binary_and_multilabel_targets_keep_scikit_learns_own_path():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))
    binary = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    with pytest.warns(Warning):
        binary.fit(X, rng.integers(0, 2, 50))
    out = rng.random((10, 1))
    assert np.array_equal(binary._decode(out), binary._label_binarizer.inverse_transform(out.ravel()))
    Y = rng.integers(0, 2, (50, 3))
    multilabel = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    with pytest.warns(Warning):
        multilabel.fit(X, Y)
    out = rng.random((10, 3))
    decoded = multilabel._decode(out)
    assert np.array_equal(decoded, multilabel._label_binarizer.inverse_transform(out))
    assert multilabel._score_function(Y[:10], decoded) == accuracy_score(Y[:10], decoded)


@pytest.mark.parametrize("labels", [np.arange(3), np.array([4, 9]), np.array(["no", "yes"]), np.array(["a", "b", "c", "d"]),
                                    np.array([-1.0, 2.0, 7.0]), np.array([False, True])])
def test_binarized_targets_are_label_binarizers(labels):
    # The one-hot targets a fit trains on, made without label_binarize's checks, against it.
    rng = np.random.default_rng(len(labels))
    X = rng.standard_normal((40, 3))
    y = labels[rng.integers(0, len(labels), 40)]
    y[: len(labels)] = labels
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0)
    with pytest.warns(Warning):
        clf.fit(X, y)
    for sample in (y, y[::-1].copy(), y[:1]):
        ours = clf._binarized(sample)
        expected = clf._label_binarizer.transform(sample).astype(bool)
        assert ours.dtype == expected.dtype and ours.shape == expected.shape
        assert np.array_equal(ours, expected)
