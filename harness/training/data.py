"""Data for the training cases: loading, normalization, the train/test split, the probe set.

Three datasets, none downloaded at run time:

- ``digits``: scikit-learn's bundled ``load_digits`` (1797 images of 8x8 pixels, values
  0..16, 10 classes, 174..183 images per class), inputs of dimension 64;
- ``mnist``: the MNIST files the user has (the standard IDX files, optionally gzipped, or an
  .npz with x_train, y_train, x_test, y_test), located by the case's ``data_path`` or the
  environment variable ``NTK_HARNESS_MNIST`` (:func:`mnist_path`); 28x28 pixels 0..255,
  inputs of dimension 784; ``dataset_size`` takes a seeded class-stratified subset;
- ``teacher_student``: Gaussian inputs labelled by a fixed random ReLU "teacher" network.
  The teacher's scalar output is cut at its quantiles into ``classes`` equally populated
  classes, so the classes are contiguous regions of a smooth function of the input and the
  probe set is balanced. Seeded by ``data_seed``; the teacher has 2 hidden layers of width
  64 at sigma_w^2 = 2 (He initialization).

Normalizations (applied to every input, before the split):

- ``unit_norm`` (default): ``x / |x|`` (inputs on the unit sphere, as the theory assumes);
- ``pixels``: pixel values divided by the largest possible one (255 for MNIST, 16 for
  digits), as in the paper's training script;
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
from pathlib import Path

import numpy as np

from harness.constants import DATASETS, NORMALIZATIONS


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


def _teacher_student(dataset_size: int, input_dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7EAC]))
    x = rng.standard_normal((dataset_size, input_dim))
    h = x
    for fan_out in (64, 64):
        w = rng.standard_normal((h.shape[1], fan_out)) * np.sqrt(2.0 / h.shape[1])
        h = np.maximum(h @ w, 0.0)
    score = h @ (rng.standard_normal(h.shape[1]) * np.sqrt(1.0 / h.shape[1]))
    # Quantile cut: class c holds the samples whose teacher score is in the c-th of
    # `classes` equal-count bins. Ranks make the classes exactly balanced (up to one).
    ranks = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    y = (ranks * classes) // dataset_size
    return x, y.astype(np.int64)


#: Environment variable naming the MNIST files when a case does not give ``data_path``.
MNIST_VARIABLE = "NTK_HARNESS_MNIST"
_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def mnist_path(data_path: str | None) -> Path:
    """Where the MNIST files are: ``data_path`` if given, else ``$NTK_HARNESS_MNIST``; a
    :class:`DataError` naming both when neither is set or the path does not exist."""
    import os

    given = data_path or os.environ.get(MNIST_VARIABLE)
    if not given:
        raise DataError(f"dataset 'mnist' is never downloaded: set data_path in [case.training] or the environment "
                        f"variable {MNIST_VARIABLE} to a folder with the IDX files (train-images-idx3-ubyte[.gz], "
                        "train-labels-idx1-ubyte[.gz], optionally the t10k files) or to an .npz file with x_train, "
                        "y_train (and x_test, y_test)")
    path = Path(given).expanduser()
    if not path.exists():
        source = "data_path" if data_path else MNIST_VARIABLE
        raise DataError(f"dataset 'mnist': {source} = {str(path)!r} does not exist")
    return path


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format, optionally gzipped) as a numpy array: magic 0x0000 0x08 (unsigned
    bytes) and the number of dimensions, then each dimension as a big-endian uint32, then the data."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        content = handle.read()
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {content[:4].hex()!r})")
    dims = content[3]
    shape = tuple(int.from_bytes(content[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says shape {shape} ({int(np.prod(shape))} values) but holds {data.size}")
    return data.reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz", folder / stem.replace("-idx", ".idx"),
                      folder / f"{stem.replace('-idx', '.idx')}.gz"):
        if candidate.exists():
            return candidate
    return None


@lru_cache(maxsize=2)
def _mnist(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Every MNIST image the files hold (train, then test when present): [N, 784] pixels 0..255, labels [N]."""
    location = Path(path)
    parts = []
    if location.is_file():
        if location.suffix != ".npz":
            raise DataError(f"dataset 'mnist': {location} is a file but not an .npz; give the folder of the IDX files")
        with np.load(location) as archive:
            for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
                if x_key in archive and y_key in archive:
                    parts.append((archive[x_key], archive[y_key]))
        if not parts:
            raise DataError(f"dataset 'mnist': {location} holds no x_train / y_train arrays")
    else:
        for split, (images, labels) in _IDX_FILES.items():
            image_file, label_file = _find(location, images), _find(location, labels)
            if image_file is None or label_file is None:
                if split == "train":
                    raise DataError(f"dataset 'mnist': {location} has no {images}[.gz] and {labels}[.gz]")
                continue
            parts.append((read_idx(image_file), read_idx(label_file)))
    x = np.concatenate([p[0].reshape(p[0].shape[0], -1) for p in parts]).astype(np.float64)
    y = np.concatenate([p[1].reshape(-1) for p in parts]).astype(np.int64)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"dataset 'mnist': {x.shape[0]} images but {y.shape[0]} labels in {location}")
    if x.shape[1] != 784:
        raise DataError(f"dataset 'mnist': images of {x.shape[1]} pixels in {location}, expected 28 x 28 = 784")
    return x, y


def raw_data(name: str, *, dataset_size: int = 2000, input_dim: int = 32, classes: int = 10,
             seed: int = 0, data_path: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalized inputs [N, d] and labels [N] of dataset ``name``.

    ``input_dim`` and ``classes`` apply to ``teacher_student`` only; ``dataset_size`` is its size,
    and for ``mnist`` a seeded, class-stratified subset of that many images (all of them when
    ``dataset_size`` is at least their number); ``data_path`` locates MNIST (:func:`mnist_path`).
    """
    if name == "digits":
        return _digits()
    if name == "mnist":
        x, y = _mnist(str(mnist_path(data_path)))
        if dataset_size >= x.shape[0]:
            return x, y
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x3A15]))
        chosen = []
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            take = int(round(dataset_size * idx.size / y.size))
            chosen.append(idx[rng.permutation(idx.size)[:take]])
        chosen = np.sort(np.concatenate(chosen))
        return x[chosen], y[chosen]
    if name == "teacher_student":
        if dataset_size < classes:
            raise DataError(f"teacher_student: dataset_size ({dataset_size}) must be at least classes ({classes})")
        return _teacher_student(dataset_size, input_dim, classes, seed)
    raise DataError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}")


#: The largest pixel value of each image dataset (``pixels`` divides by it).
PIXEL_MAX = {"digits": 16.0, "mnist": 255.0}


def normalize(x: np.ndarray, how: str, *, pixel_max: float | None = None) -> np.ndarray:
    """Apply normalization ``how`` (one of :data:`NORMALIZATIONS`) to inputs [N, d].

    ``pixels`` divides by the dataset's largest pixel value ``pixel_max`` (255 for MNIST,
    16 for digits): values in [0, 1], not normalized per input, as in the paper's scripts.
    """
    if how == "pixels":
        if pixel_max is None:
            raise DataError("pixels: the dataset has no pixel range (use unit_norm, standardize or none)")
        return x / pixel_max
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
                 probe_per_class: int = 10, data_seed: int = 0, dataset_size: int = 2000, input_dim: int = 32,
                 classes: int = 10, data_path: str | None = None) -> Dataset:
    """Load, normalize and split dataset ``name`` and pick its probe set (see the module docstring)."""
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must be in [0, 1); got {test_fraction!r}")
    if probe_per_class < 1:
        raise DataError(f"probe_per_class must be >= 1; got {probe_per_class!r}")
    x, y = raw_data(name, dataset_size=dataset_size, input_dim=input_dim, classes=classes, seed=data_seed, data_path=data_path)
    check_probe_fits(y, test_fraction, probe_per_class, name)
    x = normalize(x, normalization, pixel_max=PIXEL_MAX.get(name))
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
