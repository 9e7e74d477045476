"""A histogram version of scikit-learn's ``GradientBoostingClassifier``, for DCI's fast mode.

DCI (as disentanglement_lib computes it) fits one ``GradientBoostingClassifier()`` per
factor: 100 stages of depth-3 regression trees on the multinomial deviance, one tree per
class and stage, learning rate 0.1, squared-error splits on the residual ``y - p``,
Newton leaf values ``(K-1)/K * sum(r) / sum(p (1 - p))``, and feature importance = the
residual's squared-error reduction summed over all splits. This module runs that same
algorithm with one change: each code is cut into at most ``num_bins`` bins (at the
largest gaps of equal-count windows, :func:`gap_edges`) and splits are searched between
bins only (as LightGBM and sklearn's HistGradientBoosting
do). Keeping everything else identical keeps the importances close to the exact ones
(measured in docs/metrics.md); other tree libraries change the split gain and the leaf
values and drift by up to 0.1.

Speed comes from growing the trees of all classes of a stage at once, level by level: the
per-(node, code, bin) sums are one matrix product of a one-hot bin matrix with the masked
residuals (sparse: it costs N * D per column whatever the number of bins), and a right
child's histogram is its parent's minus the left one.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

DEPTH = 3
STAGES = 100
LEARNING_RATE = 0.1


def gap_edges(values: np.ndarray, num_bins: int) -> np.ndarray:
    """At most ``num_bins - 1`` cut points for one code: the sorted values are split into
    ``num_bins`` equal-count windows and each window cuts at the midpoint of its largest
    gap between consecutive values. On continuous codes this is a quantile binning; on
    clustered codes the cuts land between the clusters, where the exact trees cut too.
    With at most ``num_bins`` distinct values, every value gets its own bin."""
    x = np.sort(values)
    uniq = np.unique(x)
    if len(uniq) <= num_bins:
        return (uniq[:-1] + uniq[1:]) / 2
    gaps = np.diff(x)
    bounds = np.linspace(0, len(gaps), num_bins + 1).round().astype(int)
    edges = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi > lo:
            j = lo + int(np.argmax(gaps[lo:hi]))
            if gaps[j] > 0:
                edges.append((x[j] + x[j + 1]) / 2)
    return np.unique(edges)


def bin_codes(
    x_train: np.ndarray, x_test: np.ndarray, num_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bin indices (train, test) per column, cut at :func:`gap_edges` of the train codes."""
    b_train = np.empty(x_train.shape, dtype=np.int64)
    b_test = np.empty(x_test.shape, dtype=np.int64)
    for j in range(x_train.shape[1]):
        edges = gap_edges(x_train[:, j], num_bins)
        b_train[:, j] = np.searchsorted(edges, x_train[:, j], side="right")
        b_test[:, j] = np.searchsorted(edges, x_test[:, j], side="right")
    return b_train, b_test


def _probabilities(raw: np.ndarray, binary: bool) -> np.ndarray:
    if binary:
        return 1.0 / (1.0 + np.exp(-raw))
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_predict(
    x_train: np.ndarray, labels: np.ndarray, x_test: np.ndarray, num_bins: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boost a classifier of dense labels 0..C-1 (C >= 2) from codes [N, D].

    Returns (importance [D], summing to 1, or all 0 without any split; predicted train
    labels; predicted test labels).
    """
    n, d = x_train.shape
    b_train, b_test = bin_codes(x_train, x_test, num_bins)
    width = int(max(b_train.max(), b_test.max())) + 1
    # One-hot bin matrix [D * width, N], sparse: N * D ones, small enough to stay in cache.
    onehot_t = sparse.csr_matrix(
        (
            np.ones(n * d, dtype=np.float32),
            ((np.arange(d) * width + b_train).ravel(), np.repeat(np.arange(n), d)),
        ),
        shape=(d * width, n),
    )
    root_counts = np.asarray(onehot_t.sum(axis=1)).reshape(d, width)

    classes = int(labels.max()) + 1
    binary = classes == 2
    trees = 1 if binary else classes  # trees per stage
    target = np.zeros((n, trees))
    if binary:
        target[:, 0] = labels
    else:
        target[np.arange(n), labels] = 1.0
    # Initial raw predictions: log class priors (the logit of the prior for two classes).
    prior = target.mean(axis=0)
    init = np.log(prior / (1 - prior)) if binary else np.log(prior)
    raw = np.tile(init, (n, 1))
    raw_test = np.tile(init, (len(x_test), 1))
    scale = LEARNING_RATE * (1.0 if binary else (classes - 1) / classes)
    gains = np.zeros(d)

    start_train = (np.arange(n, dtype=np.int32) * d)[:, None]  # row starts in flat bins
    start_test = (np.arange(len(x_test), dtype=np.int32) * d)[:, None]
    bins_train, bins_test = b_train.astype(np.int32).ravel(), b_test.astype(np.int32).ravel()
    tree = np.arange(trees, dtype=np.int32)
    for _ in range(STAGES):
        prob = _probabilities(raw, binary)
        resid = target - prob
        resid32 = resid.astype(np.float32)
        node = np.zeros((n, trees), dtype=np.int32)
        node_test = np.zeros((len(x_test), trees), dtype=np.int32)
        hist_sum = (onehot_t @ resid32).T.reshape(trees, 1, d, width)
        hist_cnt = np.broadcast_to(root_counts, (trees, 1, d, width))
        for level in range(DEPTH):
            gain, feat, cut = _best_splits(hist_sum, hist_cnt)
            np.add.at(gains, feat, gain)
            # Split tables indexed by node * trees + tree; no split: every sample goes left.
            feat_tab = feat.T.astype(np.int32).ravel()
            cut_tab = np.where(gain > 0, cut, width).T.astype(np.int32).ravel()
            node = 2 * node + _goes_right(
                bins_train, start_train, node * trees + tree, feat_tab, cut_tab
            )
            node_test = 2 * node_test + _goes_right(
                bins_test, start_test, node_test * trees + tree, feat_tab, cut_tab
            )
            if level + 1 < DEPTH:
                hist_sum, hist_cnt = _child_histograms(onehot_t, resid32, node, hist_sum, hist_cnt)
        # Newton leaf values, one per (leaf, tree).
        leaves = (node * trees + tree).ravel()
        size = trees << DEPTH
        num = np.bincount(leaves, resid.ravel(), size)
        hess = np.bincount(leaves, (prob * (1 - prob)).ravel(), size)
        value = scale * np.divide(num, hess, out=np.zeros(size), where=np.abs(hess) >= 1e-150)
        raw += np.take(value, node * trees + tree)
        raw_test += np.take(value, node_test * trees + tree)

    importance = gains / gains.sum() if gains.sum() > 0 else gains
    return importance, _predict(raw), _predict(raw_test)


def _predict(raw: np.ndarray) -> np.ndarray:
    return (raw[:, 0] > 0).astype(np.int64) if raw.shape[1] == 1 else raw.argmax(axis=1)


def _goes_right(
    bins: np.ndarray,
    row_start: np.ndarray,
    key: np.ndarray,
    feat_tab: np.ndarray,
    cut_tab: np.ndarray,
) -> np.ndarray:
    """0/1 per (sample, tree): is the sample's bin on its node's split code past the cut?
    ``key`` = node * T + tree indexes the split tables."""
    return (np.take(bins, row_start + np.take(feat_tab, key)) > np.take(cut_tab, key)).astype(
        np.int32
    )


def _best_splits(
    hist_sum: np.ndarray, hist_cnt: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best (gain, code, last left bin) per tree and node from [T, m, D, B] histograms.

    gain = squared-error reduction of the residual (sum_l^2/n_l + sum_r^2/n_r - sum^2/n).
    """
    hist_sum = hist_sum.astype(np.float64)
    left_sum = np.cumsum(hist_sum, axis=3)[..., :-1]
    left_cnt = np.cumsum(hist_cnt, axis=3)[..., :-1]
    tot_sum = hist_sum.sum(axis=3, keepdims=True)
    tot_cnt = hist_cnt.sum(axis=3, keepdims=True)
    right_sum, right_cnt = tot_sum - left_sum, tot_cnt - left_cnt
    valid = (left_cnt > 0) & (right_cnt > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = left_sum**2 / left_cnt + right_sum**2 / right_cnt - tot_sum**2 / tot_cnt
    gain = np.where(valid, gain, -np.inf)
    t, m, d, b = gain.shape
    flat = gain.reshape(t, m, d * b)
    best = flat.argmax(axis=2)
    best_gain = np.take_along_axis(flat, best[..., None], axis=2)[..., 0]
    best_gain = np.where(
        np.isfinite(best_gain) & (best_gain > 1e-12 * tot_cnt[..., 0, 0]), best_gain, 0.0
    )
    return best_gain, best // b, best % b


def _child_histograms(
    onehot_t: sparse.csr_matrix,
    resid32: np.ndarray,
    node: np.ndarray,
    parent_sum: np.ndarray,
    parent_cnt: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of the next level's nodes: even (left) children by one matrix product,
    odd (right) children as parent minus left."""
    t, m, d, b = parent_sum.shape
    n = len(node)
    masked = np.empty((n, 2, t, m), dtype=np.float32)
    np.equal(node[:, :, None], 2 * np.arange(m), out=masked[:, 1])  # sample in left child j
    np.multiply(masked[:, 1], resid32[:, :, None], out=masked[:, 0])
    hist = (onehot_t @ masked.reshape(n, -1)).T.reshape(2, t, m, d, b)
    child_sum = np.stack([hist[0], parent_sum - hist[0]], axis=2).reshape(t, 2 * m, d, b)
    child_cnt = np.stack([hist[1], parent_cnt - hist[1]], axis=2).reshape(t, 2 * m, d, b)
    return child_sum, child_cnt
