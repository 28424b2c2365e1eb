"""Data for the training cases: loading, normalization, the train/test split, the probe set.

Two datasets, neither downloaded at run time:

- ``digits``: scikit-learn's bundled ``load_digits`` (1797 images of 8x8 pixels, values
  0..16, 10 classes, 174..183 images per class), inputs of dimension 64;
- ``teacher_student``: Gaussian inputs labelled by a fixed random ReLU "teacher" network.
  The teacher's scalar output is cut at its quantiles into ``classes`` equally populated
  classes, so the classes are contiguous regions of a smooth function of the input and the
  probe set is balanced. Seeded by ``data_seed``; the teacher has 2 hidden layers of width
  64 at sigma_w^2 = 2 (He initialization).

Normalizations (applied to every input, before the split):

- ``unit_norm`` (default): ``x / |x|``, as in the paper (inputs on the unit sphere);
- ``standardize``: each feature to mean 0 and variance 1 over the whole set (constant
  features stay 0); input norms are then about sqrt(d), so pick sigma and the learning
  rate with that in mind;
- ``none``: the raw values.

The split is stratified by class and seeded (``data_seed``). The probe set, on which the NTK
is computed, is ``probe_per_class`` training samples of every class, chosen by a seeded
permutation and ordered by class (class 0 first), so that the NTK matrix on it has the
class blocks on its diagonal.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

DATASETS = ("digits", "teacher_student")
NORMALIZATIONS = ("unit_norm", "standardize", "none")


class DataError(ValueError):
    """A dataset request that cannot be met (unknown name, probe set larger than the data)."""


@dataclass(frozen=True)
class Dataset:
    """A split, normalized classification set and its probe set.

    x_train [N_train, d], y_train [N_train] (int class labels), likewise x_test, y_test;
    x_probe [C * k, d], y_probe [C * k], ordered by class with k = probe_per_class.
    All float64 numpy arrays (labels int64); the runner casts to its dtype.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_probe: np.ndarray
    y_probe: np.ndarray
    num_classes: int

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)


def _teacher_student(samples: int, input_dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7EAC]))
    x = rng.standard_normal((samples, input_dim))
    h = x
    for fan_out in (64, 64):
        w = rng.standard_normal((h.shape[1], fan_out)) * np.sqrt(2.0 / h.shape[1])
        h = np.maximum(h @ w, 0.0)
    score = h @ (rng.standard_normal(h.shape[1]) * np.sqrt(1.0 / h.shape[1]))
    # Quantile cut: class c holds the samples whose teacher score is in the c-th of
    # `classes` equal-count bins. Ranks make the classes exactly balanced (up to one).
    ranks = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    y = (ranks * classes) // samples
    return x, y.astype(np.int64)


def raw_data(name: str, *, samples: int = 2000, input_dim: int = 32, classes: int = 10,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalized inputs [N, d] and labels [N] of dataset ``name``.

    ``samples``, ``input_dim`` and ``classes`` apply to ``teacher_student`` only.
    """
    if name == "digits":
        return _digits()
    if name == "teacher_student":
        if samples < classes:
            raise DataError(f"teacher_student: samples ({samples}) must be at least classes ({classes})")
        return _teacher_student(samples, input_dim, classes, seed)
    raise DataError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}")


def normalize(x: np.ndarray, how: str) -> np.ndarray:
    """Apply normalization ``how`` (one of :data:`NORMALIZATIONS`) to inputs [N, d]."""
    if how == "unit_norm":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise DataError("unit_norm: some inputs are all zero and cannot be scaled to norm 1")
        return x / norms
    if how == "standardize":
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        return np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0)
    if how == "none":
        return x.copy()
    raise DataError(f"normalization must be one of {', '.join(NORMALIZATIONS)}; got {how!r}")


def class_counts_after_split(labels: np.ndarray, test_fraction: float) -> dict[int, int]:
    """Training samples per class after a stratified split (as :func:`load_dataset` makes it)."""
    counts = {}
    for c in np.unique(labels):
        total = int(np.sum(labels == c))
        counts[int(c)] = total - int(round(total * test_fraction))
    return counts


def check_probe_fits(labels: np.ndarray, test_fraction: float, probe_per_class: int, dataset: str) -> None:
    """Raise :class:`DataError` naming the sizes when a class has fewer training samples than the probe needs."""
    counts = class_counts_after_split(labels, test_fraction)
    short = {c: n for c, n in counts.items() if n < probe_per_class}
    if short:
        worst = min(short, key=short.get)
        raise DataError(
            f"probe set larger than the data: probe_per_class = {probe_per_class} needs "
            f"{probe_per_class * len(counts)} training samples ({probe_per_class} of each of {len(counts)} classes), "
            f"but dataset {dataset!r} with test_fraction = {test_fraction} has {sum(counts.values())} training "
            f"samples and class {worst} has only {short[worst]}"
        )


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) of a split that puts round(n_c * test_fraction) of each class in the test set."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B17]))
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(idx.size * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_dataset(name: str = "digits", *, normalization: str = "unit_norm", test_fraction: float = 0.25,
                 probe_per_class: int = 10, data_seed: int = 0, samples: int = 2000, input_dim: int = 32,
                 classes: int = 10) -> Dataset:
    """Load, normalize and split dataset ``name`` and pick its probe set (see the module docstring)."""
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must be in [0, 1); got {test_fraction!r}")
    if probe_per_class < 1:
        raise DataError(f"probe_per_class must be >= 1; got {probe_per_class!r}")
    x, y = raw_data(name, samples=samples, input_dim=input_dim, classes=classes, seed=data_seed)
    check_probe_fits(y, test_fraction, probe_per_class, name)
    x = normalize(x, normalization)
    train, test = stratified_split(y, test_fraction, data_seed)
    x_train, y_train = x[train], y[train]
    rng = np.random.default_rng(np.random.SeedSequence([int(data_seed), 0x960BE]))
    probe = []
    for c in np.unique(y_train):
        idx = np.flatnonzero(y_train == c)
        probe.append(idx[rng.permutation(idx.size)[:probe_per_class]])
    probe = np.concatenate(probe)
    return Dataset(
        name=name,
        x_train=x_train, y_train=y_train,
        x_test=x[test], y_test=y[test],
        x_probe=x_train[probe], y_probe=y_train[probe],
        num_classes=int(np.unique(y).size),
    )
