"""One training experiment: train S networks of one architecture, measure their NTK.

:func:`run_experiment` initializes networks ``0..S-1`` of the run seeded ``seed``
(:func:`harness.networks.init_parameters`), trains them together (:mod:`harness.training.loop`)
and, at every checkpoint, computes each network's NTK on the probe set
(:mod:`harness.training.probe`) and compares it with the network's NTK at initialization
(:mod:`harness.training.metrics`). Quantities are measured on the output-trace NTK
``sum_i Theta[a, b, i, i]`` ([N, N]; :func:`harness.training.probe.probe_trace_ntk`); with
``full_blocks=True`` the relative change is also measured on the full per-output NTK
``Theta[a, b, i, j]`` ([N, N, O, O]; :func:`harness.training.probe.probe_ntk`, the
implementation's blocks: O^2 times the contraction work and, for the Jacobian
implementation, a parameter-sized Jacobian per probe chunk).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from harness.networks import MLP, Architecture, activation_function, init_parameters, unstack
from harness.training import metrics
from harness.training.data import Dataset
from harness.training.loop import TrainingConfig, train
from harness.training.probe import probe_ntk, probe_trace_ntk

#: The per-checkpoint quantities, each recorded as [checkpoint][seed].
QUANTITIES = (
    "relative_change",          # output-trace NTK
    "relative_change_full",     # per-output blocks [N, N, O, O] (only with full_blocks)
    "alignment",
    "misalignment",             # 1 - alignment: how far the kernel's shape (direction) moved
    "top_eigenvalue_change",    # relative change of the largest eigenvalue
    "ntk_norm",                 # |Theta_t|_F of the output-trace NTK (its scale: relative_change = |dTheta| / this at 0)
    "sigma_w2_effective",       # geometric mean over hidden-to-hidden layers of the weights' variance x fan-in
    "sigma_b2_effective",       # mean over hidden layers of the squared bias entries
    "signal_propagation",       # input-dependent spread at the last hidden layer / at the input (probe set)
    "block_ratio",
    "block_ratio_growth",       # block_ratio(t) / block_ratio(0)
    # the paper's Fig. 4 measures (metrics.class_block_ratios), scale-free: ratios to the mean diagonal
    "class_block_over_diagonal",        # Theta_c / Theta_d
    "class_block_over_diagonal_error",  # its error bar: mean over classes of the std within a block, / Theta_d
    "off_class_over_diagonal",          # Theta_n / Theta_d
    "off_class_over_diagonal_error",    # its error bar: std of the off-class entries, / Theta_d
    "class_block_change",               # |Theta_c/Theta_d (t) - Theta_c/Theta_d (0)|
    "off_class_change",                 # |Theta_n/Theta_d (t) - Theta_n/Theta_d (0)|
    "class_block_excursion",            # max over checkpoints s <= t of class_block_change(s)
    "off_class_excursion",              # max over checkpoints s <= t of off_class_change(s)
    "train_loss",
    "test_loss",
    "test_accuracy",
)


@dataclass
class ExperimentResult:
    """Per-checkpoint, per-seed measurements of one architecture (see :data:`QUANTITIES`).

    ``series[q][c][s]``: quantity q at checkpoint c for network s. ``eigenvalues[c][s]``: the
    top-k eigenvalues of the output-trace NTK.
    """

    architecture: Architecture
    checkpoints: list[int]
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    eigenvalues: list[list[list[float]]] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    #: Network 0's output-trace NTK on the probe set at step 0 and at the last checkpoint,
    #: [N][N] lists, with the probe labels (for figures of the block structure).
    probe_ntk: dict = field(default_factory=dict)
    #: Network 0's output-trace NTK at each of ``matrix_checkpoints``: {step: [N][N]}.
    ntk_matrices: dict[int, list[list[float]]] = field(default_factory=dict)
    #: Losses at every state t = 0..steps, [step][network] (:class:`harness.training.loop.TrainingHistory`).
    train_loss_per_step: list[list[float]] = field(default_factory=list)
    test_loss_per_step: list[list[float]] = field(default_factory=list)

    def final(self, quantity: str) -> list[float]:
        """Quantity at the last checkpoint, one value per network."""
        return self.series[quantity][-1]


def effective_variances(architecture: Architecture, params) -> tuple[float, float]:
    """Where the network's parameters sit in the phase diagram: ``(sigma_w2, sigma_b2)`` as if drawn anew.

    sigma_w2: the geometric mean over the hidden-to-hidden layers l = 2..L of ``fan_in *
    mean(W^l_ij^2)`` (times ``sigma_w2 / fan_in`` per entry in the NTK parametrization, where
    entries are standard normal at initialization); the geometric mean because the forward
    signal is multiplied by each layer's gain. sigma_b2: the mean over hidden layers of the
    squared bias entries (times ``sigma_b2`` in the NTK parametrization). At initialization
    they are the case's sigma_w^2 (up to sampling) and 0; during training they say whether the
    network has moved in the phase diagram (e.g. out of the ordered phase).
    """
    depth = architecture.depth
    ntk = architecture.parametrization == "ntk"
    logs, biases = [], []
    for k in range(1, depth + 1):
        if k < depth:
            w = params[f"layers.{k}.weight"].detach().double()
            fan_in = w.shape[1]
            variance = float((w * w).mean()) * (architecture.sigma_w2 if ntk else fan_in)
            logs.append(np.log(max(variance, np.finfo(float).tiny)))
    for k in range(depth):
        b = params.get(f"layers.{k}.bias")
        if b is not None:
            biases.append(float((b.detach().double() ** 2).mean()) * (architecture.sigma_b2 if ntk else 1.0))
    gain = float(np.exp(np.mean(logs))) if logs else float("nan")
    return gain, (float(np.mean(biases)) if biases else 0.0)


def signal_propagation(f: MLP, params, x: torch.Tensor) -> float:
    """How much of the inputs' differences reaches the last hidden layer: the mean squared
    distance of ``x^L(x_a)`` from its mean over the probe inputs, divided by the same for the
    inputs ``x_a``. At initialization it falls at least like ``(sigma_w^2 / 2)^L`` in the ordered phase
    (the inputs' differences die out with depth: the order parameter of the phase) and stays of
    order 1 at the edge of chaos; growing during training, it says the network has left the
    ordered regime of signal propagation whatever its weight variances.
    """
    with torch.no_grad():
        h = x
        for i in range(f.num_layers - 1):
            h = activation_function(f.architecture.activation)(f.preactivation(params, i, h))
        spread = ((h - h.mean(0)) ** 2).sum(1).mean()
        reference = ((x - x.mean(0)) ** 2).sum(1).mean()
    return float(spread / reference)


@dataclass
class Measured:
    """One network's probe NTK at step 0: the references every later checkpoint is compared with."""

    full: torch.Tensor | None
    trace: torch.Tensor
    block_ratio: float
    ratios: metrics.ClassBlockRatios
    #: the largest |r(t) - r(0)| so far of Theta_c/Theta_d and Theta_n/Theta_d
    excursions: tuple[float, float] = (0.0, 0.0)


@dataclass
class ProbeRecorder:
    """At each checkpoint, every network's probe NTK and every quantity of :data:`QUANTITIES`
    against its NTK at step 0, into ``result`` (the training loop calls :meth:`__call__`)."""

    f: MLP
    x_probe: torch.Tensor
    labels: np.ndarray
    implementation: Callable
    memory_budget_bytes: int
    full_blocks: bool
    eigenvalues: int
    matrix_checkpoints: tuple[int, ...]
    result: ExperimentResult
    initial: list[Measured] = field(default_factory=list)
    seconds: float = 0.0

    def __call__(self, step: int, stacked: dict[str, torch.Tensor]) -> None:
        started = time.perf_counter()
        row = {q: [] for q in self.result.series if q not in ("train_loss", "test_loss", "test_accuracy")}
        eigenvalues = []
        for s in range(next(iter(stacked.values())).shape[0]):
            own = unstack(stacked, s)
            trace = probe_trace_ntk(self.implementation, self.f, own, self.x_probe, self.f.architecture.output_dim,
                                    self.memory_budget_bytes)
            full = (probe_ntk(self.implementation, self.f, own, self.x_probe, self.f.architecture.output_dim,
                              self.memory_budget_bytes) if self.full_blocks else None)
            self._network(row, s, step, own, trace, full)
            eigenvalues.append(metrics.top_eigenvalues(trace, self.eigenvalues).tolist())
            if s == 0:
                self._keep_matrices(step, trace)
        for q, values in row.items():
            self.result.series[q].append(values)
        self.result.eigenvalues.append(eigenvalues)
        self.seconds += time.perf_counter() - started

    def _network(self, row: dict, s: int, step: int, own, trace, full) -> None:
        labels = self.labels
        ratios = metrics.class_block_ratios(trace, labels)
        block = metrics.block_ratio(trace, labels)
        if step == 0:
            self.initial.append(Measured(full, trace, block, ratios))
        first = self.initial[s]
        row["relative_change"].append(metrics.relative_change(trace, first.trace))
        if self.full_blocks:
            row["relative_change_full"].append(metrics.relative_change(full, first.full))
        cosine = metrics.alignment(trace, first.trace)
        row["alignment"].append(cosine)
        row["misalignment"].append(1.0 - cosine)
        row["top_eigenvalue_change"].append(float(metrics.eigenvalue_change(trace, first.trace, 1)[0]))
        row["ntk_norm"].append(float(torch.linalg.norm(trace.detach().double())))
        gain, bias = effective_variances(self.f.architecture, own)
        row["signal_propagation"].append(signal_propagation(self.f, own, self.x_probe))
        row["sigma_w2_effective"].append(gain)
        row["sigma_b2_effective"].append(bias)
        row["block_ratio"].append(block)
        row["block_ratio_growth"].append(block / first.block_ratio)
        for name in ("class_block_over_diagonal", "class_block_over_diagonal_error", "off_class_over_diagonal",
                     "off_class_over_diagonal_error"):
            row[name].append(getattr(ratios, name))
        changes = (abs(ratios.class_block_over_diagonal - first.ratios.class_block_over_diagonal),
                   abs(ratios.off_class_over_diagonal - first.ratios.off_class_over_diagonal))
        first.excursions = tuple(max(e, c) for e, c in zip(first.excursions, changes))
        row["class_block_change"].append(changes[0])
        row["off_class_change"].append(changes[1])
        row["class_block_excursion"].append(first.excursions[0])
        row["off_class_excursion"].append(first.excursions[1])

    def _keep_matrices(self, step: int, trace: torch.Tensor) -> None:
        """Network 0's matrix at step 0, the last checkpoint and every matrix checkpoint."""
        matrix = None
        if step in (0, max(self.result.checkpoints)) or step in self.matrix_checkpoints:
            matrix = trace.detach().cpu().double().tolist()
        if step == 0:
            self.result.probe_ntk["initial"] = matrix
        if step == max(self.result.checkpoints):
            self.result.probe_ntk["final"] = matrix
        if step in self.matrix_checkpoints:
            self.result.ntk_matrices[step] = matrix


def run_experiment(
    architecture: Architecture,
    dataset: Dataset,
    config: TrainingConfig,
    *,
    networks: int,
    seed: int,
    implementation: Callable,
    memory_budget_bytes: int,
    device: torch.device,
    dtype: torch.dtype,
    eigenvalues: int = 5,
    full_blocks: bool = False,
    matrix_checkpoints: tuple[int, ...] = (),
) -> ExperimentResult:
    """Train ``networks`` networks of ``architecture`` on ``dataset`` and measure their probe NTK.

    ``full_blocks``: also compute the full per-output blocks with ``implementation`` and record
    ``relative_change_full`` (otherwise that quantity is absent from ``series``).
    ``matrix_checkpoints``: steps at which network 0's probe NTK matrix is kept
    (``ntk_matrices``; the first and last checkpoint are always kept in ``probe_ntk``).
    """
    if 0 not in config.checkpoints:
        raise ValueError("the checkpoints must include step 0 (the NTK at initialization)")
    started = time.perf_counter()
    f = MLP(architecture)
    params = init_parameters(architecture, seed, range(networks), dtype=dtype, device=device)

    def tensor(a, kind=dtype):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=kind, device=device)

    quantities = [q for q in QUANTITIES if full_blocks or q != "relative_change_full"]
    result = ExperimentResult(architecture, list(config.checkpoints), {q: [] for q in quantities})
    result.probe_ntk["labels"] = [int(c) for c in dataset.y_probe]
    recorder = ProbeRecorder(f, tensor(dataset.x_probe), dataset.y_probe, implementation, memory_budget_bytes,
                             full_blocks, eigenvalues, tuple(matrix_checkpoints), result)
    history = train(f, params, tensor(dataset.x_train), tensor(dataset.y_train, torch.int64), tensor(dataset.x_test),
                    tensor(dataset.y_test, torch.int64), config, seed=seed, on_checkpoint=recorder)
    result.series["train_loss"] = history.train_loss
    result.series["test_loss"] = history.test_loss
    result.series["test_accuracy"] = history.test_accuracy
    result.train_loss_per_step = history.train_loss_per_step
    result.test_loss_per_step = history.test_loss_per_step
    total = time.perf_counter() - started
    result.timing = {"total_s": total, "ntk_s": recorder.seconds, "training_s": total - recorder.seconds}
    return result
