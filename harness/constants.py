"""The harness's names for things, in one torch-free place.

Every module that needs a list of phases, statistics, dtypes, activations, references or
datasets imports it from here; theory-owned names (``PHASES``, ``STATISTICS``) come from
:mod:`reference`, which owns them, on first use. Nothing here imports torch or scipy, so the
pytest plugin can import it at start-up for free.
"""
from __future__ import annotations


def __getattr__(name: str):
    # Theory-owned names come from reference, imported on first use only (reference pulls in
    # scipy; the pytest plugin imports this module at start-up and must stay cheap).
    if name in ("PHASES", "STATISTICS"):
        import reference

        return getattr(reference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

#: Human-readable phase names, in the paper's words.
PHASE_NAMES = {"ordered": "ordered phase", "eoc": "edge of chaos", "chaotic": "chaotic phase"}

#: Compute and draw dtypes a case may ask for (torch mapping: :func:`harness.devices.resolve_dtype`).
DTYPE_NAMES = ("float64", "float32")

#: Activations of the harness's fully connected networks (phi in h^{l+1} = W^{l+1} phi(h^l) + b^{l+1}).
ACTIVATIONS = ("relu", "tanh", "erf", "linear")

#: standard: W ~ N(0, sigma_w2 / n_{l-1}); ntk: W standard normal, layer scaled by sqrt(sigma_w2 / n_{l-1}).
PARAMETRIZATIONS = ("standard", "ntk")

#: Theories a dispersion case can be checked against (`[case.expect] theories`).
THEORIES = ("exact", "asymptotic", "infinite-width")

#: Datasets of the training cases: input dimension, number of classes, and the training-set size
#: of the smallest class before the train/test split (so that collection can check a probe set
#: fits without loading the data). ``None``: set by the case (teacher-student).
DATASETS = {
    # scikit-learn's load_digits: 1797 images of 8x8 pixels; class sizes 174..183
    "digits": {"input_dim": 64, "classes": 10, "smallest_class": 174},
    # MNIST (IDX or .npz files the user has; never downloaded): 28x28 pixels; smallest class:
    # digit 5, 5421 training + 892 test images
    "mnist": {"input_dim": 784, "classes": 10, "smallest_class": 6313},
    # Gaussian inputs labelled by a random ReLU teacher, equally populated classes
    "teacher_student": {"input_dim": 32, "classes": None, "smallest_class": None},
}

#: The reference NTK implementation, and the agreement tolerance with it by dtype:
#: max|K - K_ref| / max|K_ref| (agreement cases and the differential check of Monte Carlo cases).
REFERENCE_IMPLEMENTATION = "jacobian"

#: Inputs of a user's model: Gaussian, or scikit-learn's bundled digits (no download).
MODEL_INPUTS = ("gaussian", "digits")

#: Optimizers, losses and input normalizations of the training cases.
OPTIMIZERS = ("sgd", "adam")
LOSSES = ("mse", "cross_entropy")
NORMALIZATIONS = ("unit_norm", "pixels", "standardize", "none")

__all__ = ["MODEL_INPUTS", "REFERENCE_IMPLEMENTATION", "OPTIMIZERS", "LOSSES", "NORMALIZATIONS", "PHASES", "PHASE_NAMES", "STATISTICS", "DTYPE_NAMES", "ACTIVATIONS", "PARAMETRIZATIONS", "THEORIES",
           "DATASETS"]
