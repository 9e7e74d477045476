"""A histogram version of scikit-learn's ``GradientBoostingClassifier``, for DCI's fast mode.

DCI (as disentanglement_lib computes it) fits one ``GradientBoostingClassifier()`` per
factor: 100 stages of depth-3 regression trees on the multinomial deviance, one tree per
class and stage, learning rate 0.1, squared-error splits on the residual ``y - p``,
Newton leaf values ``(K-1)/K * sum(r) / sum(p (1 - p))``, and feature importance = the
residual's squared-error reduction summed over all splits. This module runs that same
algorithm with one change: each code is cut into at most ``num_bins`` quantile bins and
splits are searched between bins only (as LightGBM and sklearn's HistGradientBoosting
do). Keeping everything else identical keeps the importances close to the exact ones
(measured in docs/metrics.md); other tree libraries change the split gain and the leaf
values and drift by up to 0.1.

Speed comes from growing every tree of a stage, for every factor, at once: the
per-(node, code, bin) sums are one matrix product of a one-hot bin matrix with the
masked residuals, and a right child's histogram is its parent's minus the left one.
"""

from __future__ import annotations

import numpy as np

DEPTH = 3
STAGES = 100
LEARNING_RATE = 0.1


def quantile_bins(x_train: np.ndarray, x_test: np.ndarray, num_bins: int) -> tuple[np.ndarray, ...]:
    """Bin indices (train, test) per column and the number of bins per column."""
    n, d = x_train.shape
    qs = np.linspace(0, 1, num_bins + 1)[1:-1]
    b_train = np.empty((n, d), dtype=np.int64)
    b_test = np.empty((len(x_test), d), dtype=np.int64)
    for j in range(d):
        uniq = np.unique(x_train[:, j])
        if len(uniq) <= num_bins:
            edges = (uniq[:-1] + uniq[1:]) / 2  # every distinct value its own bin
        else:
            edges = np.unique(np.quantile(x_train[:, j], qs))
        b_train[:, j] = np.searchsorted(edges, x_train[:, j], side="right")
        b_test[:, j] = np.searchsorted(edges, x_test[:, j], side="right")
    return b_train, b_test


def _probabilities(raw: np.ndarray, binary: bool) -> np.ndarray:
    if binary:
        return 1.0 / (1.0 + np.exp(-raw))
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_predict(
    x_train: np.ndarray,
    labels_train: list[np.ndarray],
    x_test: np.ndarray,
    num_bins: int = 32,
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Boost one classifier per factor on the same codes.

    ``labels_train``: per factor, dense class labels 0..C-1 (C >= 2) of the train points.
    Returns (importance [D, K] with columns summing to 1 (or 0 without any split),
    per-factor predicted train labels, per-factor predicted test labels).
    """
    n, d = x_train.shape
    b_train, b_test = quantile_bins(x_train, x_test, num_bins)
    width = int(max(b_train.max(), b_test.max())) + 1
    onehot = np.zeros((n, d * width), dtype=np.float32)
    onehot[np.arange(n)[:, None], np.arange(d) * width + b_train] = 1.0
    onehot_t = np.ascontiguousarray(onehot.T)
    root_counts = onehot.sum(axis=0).reshape(d, width)

    classes = [int(lab.max()) + 1 for lab in labels_train]
    trees = [1 if c == 2 else c for c in classes]  # trees per stage, per factor
    owner = np.repeat(np.arange(len(classes)), trees)  # factor of each tree column
    cols = np.concatenate([[0], np.cumsum(trees)])
    num_trees = int(cols[-1])
    target = np.zeros((n, num_trees))
    for f, lab in enumerate(labels_train):
        if classes[f] == 2:
            target[:, cols[f]] = lab
        else:
            target[np.arange(n), cols[f] + lab] = 1.0
    # Initial raw predictions: the log class priors (logit of the prior for two classes).
    prior = target.mean(axis=0)
    init = np.log(prior)
    for f, c in enumerate(classes):
        if c == 2:
            init[cols[f]] = np.log(prior[cols[f]] / (1 - prior[cols[f]]))
    raw = np.tile(init, (n, 1))
    raw_test = np.tile(init, (len(x_test), 1))
    gains = np.zeros((num_trees, d))
    factor_scale = np.array([1.0 if c == 2 else (c - 1) / c for c in classes])[owner]
    tree_index = np.arange(num_trees)

    offset_train = (np.arange(n, dtype=np.int32) * d)[:, None]  # row starts in bins.ravel()
    offset_test = (np.arange(len(x_test), dtype=np.int32) * d)[:, None]
    bins_train, bins_test = b_train.astype(np.int16).ravel(), b_test.astype(np.int16).ravel()
    tree_col = np.arange(num_trees, dtype=np.int32)
    for _ in range(STAGES):
        prob = np.empty_like(raw)
        for f, c in enumerate(classes):
            prob[:, cols[f] : cols[f + 1]] = _probabilities(raw[:, cols[f] : cols[f + 1]], c == 2)
        resid = target - prob
        resid32 = resid.astype(np.float32)
        node = np.zeros((n, num_trees), dtype=np.int32)
        node_test = np.zeros((len(x_test), num_trees), dtype=np.int32)
        hist_sum = (onehot_t @ resid32).T.reshape(num_trees, 1, d, width)
        hist_cnt = np.broadcast_to(root_counts, (num_trees, 1, d, width))
        for level in range(DEPTH):
            gain, feat, cut = _best_splits(hist_sum, hist_cnt)
            np.add.at(gains, (np.broadcast_to(tree_index[:, None], feat.shape), feat), gain / n)
            # Split tables indexed by node * T + tree; no split: every sample goes left.
            feat_tab = feat.T.astype(np.int32).ravel()
            cut_tab = np.where(gain > 0, cut, width).T.astype(np.int16).ravel()
            node = 2 * node + _goes_right(
                bins_train, offset_train, node * num_trees + tree_col, feat_tab, cut_tab
            )
            node_test = 2 * node_test + _goes_right(
                bins_test, offset_test, node_test * num_trees + tree_col, feat_tab, cut_tab
            )
            if level + 1 < DEPTH:
                hist_sum, hist_cnt = _child_histograms(onehot_t, resid32, node, hist_sum, hist_cnt)
        # Newton leaf values, one per (tree, leaf).
        leaves = (node + tree_col * (1 << DEPTH)).ravel()
        size = num_trees << DEPTH
        num = np.bincount(leaves, resid.ravel(), size)
        hess = np.bincount(leaves, (prob * (1 - prob)).ravel(), size)
        value = np.divide(num, hess, out=np.zeros(size), where=np.abs(hess) >= 1e-150)
        value = (value.reshape(num_trees, -1) * (factor_scale * LEARNING_RATE)[:, None]).T.ravel()
        raw += np.take(value, node * num_trees + tree_col)
        raw_test += np.take(value, node_test * num_trees + tree_col)

    importance = np.zeros((d, len(classes)))
    for f in range(len(classes)):
        total = gains[cols[f] : cols[f + 1]].sum(axis=0)
        if total.sum() > 0:
            importance[:, f] = total / total.sum()
    pred_train = [_predict(raw[:, cols[f] : cols[f + 1]]) for f in range(len(classes))]
    pred_test = [_predict(raw_test[:, cols[f] : cols[f + 1]]) for f in range(len(classes))]
    return importance, pred_train, pred_test


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
    onehot_t: np.ndarray,
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
