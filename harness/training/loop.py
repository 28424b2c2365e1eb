"""Training many networks of one architecture at once, with checkpoints.

This module owns the training loop of the training cases: optimizers, losses, minibatches,
checkpoints and the detection of diverging runs.

All S networks of a run (one per seed index) are trained together: their parameters are
stacked along a leading axis ``[S, ...]``, the forward pass is ``vmap``-ed over that axis,
and the loss minimized is the SUM over networks of each network's own mean loss. Since the
networks share no parameter, the gradient of that sum with respect to network s's parameters
is the gradient of network s's loss alone; SGD (with or without momentum) and Adam update
every parameter entry from its own gradient history only, so one stacked optimizer performs
exactly the S independent trainings (one shared step counter, as S separate optimizers would
have too).

Losses, for outputs f [B, O] and labels y [B]:

- ``mse`` (default): ``mean over the batch and the O outputs of (f - onehot(y))^2`` (torch's
  ``mse_loss``, reduction ``mean``); needs O = number of classes;
- ``cross_entropy``: ``mean over the batch of -log softmax(f)_y``; needs O = number of classes.

Minibatches: each network draws its own order of the training set (a fresh permutation per
epoch, seeded from the run seed and the network index), ``batch_size`` samples per step; a
``batch_size`` at least the training set size means full-batch training.

A step counts one parameter update; checkpoint t is the state after t updates (0 = at
initialization).

Losses at every step (the paper's Fig. 4 loss panels): ``train_loss_per_step[t][s]`` and
``test_loss_per_step[t][s]`` for every state t = 0..steps. The training loss of state t < steps
is the loss that update t + 1 minimized: the full training set's loss in full-batch training
(exactly the paper's), the minibatch's otherwise; that of the last state is the full training
set's. The test loss is the full test set's at every state (one forward pass per step, no
gradient: about a tenth of a full-batch step's cost on digits).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import vmap

from harness.constants import LOSSES, OPTIMIZERS


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite; says at which step and with which learning rate."""

    def __init__(self, step: int, learning_rate: float, optimizer: str, network: int, loss_name: str, value: float):
        self.step = step
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.network = network
        self.value = value
        super().__init__(
            f"training diverged at step {step} with learning_rate = {learning_rate:g} ({optimizer}): "
            f"the {loss_name} loss of network {network} is {value}"
        )


@dataclass(frozen=True)
class TrainingConfig:
    """How to train: ``optimizer`` in :data:`OPTIMIZERS`, ``loss`` in :data:`LOSSES`.

    ``checkpoints``: the steps (0..steps) after which the callback sees the parameters.
    ``momentum`` applies to SGD only; Adam uses torch's defaults (betas 0.9, 0.999, eps 1e-8).
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    steps: int = 100
    batch_size: int = 64
    loss: str = "mse"
    checkpoints: tuple[int, ...] = (0, 100)
    momentum: float = 0.0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate!r}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps must be >= 0 and batch_size >= 1; got {self.steps}, {self.batch_size}")
        bad = [t for t in self.checkpoints if not 0 <= t <= self.steps]
        if bad:
            raise ValueError(f"checkpoints must lie in [0, steps = {self.steps}]; got {bad}")


@dataclass
class TrainingHistory:
    """Losses at the checkpoints: ``train_loss[c][s]``, ``test_loss[c][s]`` for checkpoint c, network s;
    and at every state t = 0..steps: ``train_loss_per_step[t][s]``, ``test_loss_per_step[t][s]``
    (see the module docstring for which training loss)."""

    checkpoints: list[int]
    train_loss: list[list[float]] = field(default_factory=list)
    test_loss: list[list[float]] = field(default_factory=list)
    test_accuracy: list[list[float]] = field(default_factory=list)
    train_loss_per_step: list[list[float]] = field(default_factory=list)
    test_loss_per_step: list[list[float]] = field(default_factory=list)


def batch_indices(n_train: int, batch_size: int, steps: int, seed: int, network: int) -> np.ndarray:
    """[steps, batch_size] indices into the training set for one network (epoch-wise permutations)."""
    if batch_size >= n_train:
        return np.broadcast_to(np.arange(n_train), (steps, n_train))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(network), 0xBA7C4]))
    needed = steps * batch_size
    epochs = math.ceil(needed / n_train)
    order = np.concatenate([rng.permutation(n_train) for _ in range(epochs)])[:needed]
    return order.reshape(steps, batch_size)


def per_network_loss(outputs: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss of each network: outputs [S, B, O], labels [S, B] or [B] -> [S]."""
    num_outputs = outputs.shape[-1]
    if labels.dim() == 1:
        labels = labels.expand(outputs.shape[0], -1)
    if loss == "mse":
        target = F.one_hot(labels, num_outputs).to(outputs.dtype)
        return ((outputs - target) ** 2).mean(dim=(1, 2))
    if loss == "cross_entropy":
        flat = F.cross_entropy(outputs.reshape(-1, num_outputs), labels.reshape(-1), reduction="none")
        return flat.reshape(labels.shape).mean(dim=1)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")


def _make_optimizer(config: TrainingConfig, tensors: list[torch.Tensor]) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(tensors, lr=config.learning_rate, momentum=config.momentum)
    return torch.optim.Adam(tensors, lr=config.learning_rate)


def train(
    f: Callable,
    params: Mapping[str, torch.Tensor],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    config: TrainingConfig,
    *,
    seed: int,
    on_checkpoint: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
) -> TrainingHistory:
    """Train the S stacked networks ``params`` (name -> [S, ...]) of ``f(params, x) -> [N, O]``.

    ``x_train`` [N, d], ``y_train`` [N] (int64 labels) on the parameters' device; likewise
    the test set (may be empty). ``on_checkpoint(step, params)`` is called at each checkpoint
    with detached stacked parameters. Raises :class:`DivergenceError` at the first step whose
    training loss (minibatch loss before the update, or full-set loss at a checkpoint) is NaN
    or infinite for any network. The input ``params`` are not modified.
    """
    num_networks = next(iter(params.values())).shape[0]
    stacked = vmap(f, in_dims=(0, 0))
    shared_input = vmap(f, in_dims=(0, None))
    leaves = {name: value.detach().clone().requires_grad_(True) for name, value in params.items()}
    optimizer = _make_optimizer(config, list(leaves.values()))
    n_train = x_train.shape[0]
    batch_size = min(config.batch_size, n_train)
    order = np.stack([batch_indices(n_train, batch_size, config.steps, seed, s) for s in range(num_networks)], axis=1)
    order = torch.as_tensor(order, device=x_train.device)  # [steps, S, B]
    checkpoints = sorted(set(config.checkpoints))
    history = TrainingHistory(checkpoints=checkpoints)

    def evaluate(step: int) -> None:
        with torch.no_grad():
            snapshot = {name: value.detach() for name, value in leaves.items()}
            train_loss = per_network_loss(shared_input(snapshot, x_train), y_train, config.loss)
            _check_finite(train_loss, step, config, "full training-set")
            history.train_loss.append(train_loss.tolist())
            if x_test.shape[0]:
                outputs = shared_input(snapshot, x_test)
                history.test_loss.append(per_network_loss(outputs, y_test, config.loss).tolist())
                history.test_accuracy.append((outputs.argmax(-1) == y_test).to(outputs.dtype).mean(-1).tolist())
            else:
                history.test_loss.append([math.nan] * num_networks)
                history.test_accuracy.append([math.nan] * num_networks)
            if on_checkpoint is not None:
                on_checkpoint(step, {name: value.clone() for name, value in snapshot.items()})

    def test_loss() -> list[float]:
        if not x_test.shape[0]:
            return [math.nan] * num_networks
        with torch.no_grad():
            snapshot = {name: value.detach() for name, value in leaves.items()}
            return per_network_loss(shared_input(snapshot, x_test), y_test, config.loss).tolist()

    if 0 in checkpoints:
        evaluate(0)
    for step in range(1, config.steps + 1):
        idx = order[step - 1]  # [S, B]
        history.test_loss_per_step.append(test_loss())   # of state step - 1, before its update
        outputs = stacked(leaves, x_train[idx])
        losses = per_network_loss(outputs, y_train[idx], config.loss)
        _check_finite(losses, step, config, "minibatch")
        history.train_loss_per_step.append(losses.detach().tolist())
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        if step in checkpoints:
            evaluate(step)
    if config.steps in checkpoints:   # the last state: the full sets' losses, already evaluated
        history.train_loss_per_step.append(history.train_loss[-1])
        history.test_loss_per_step.append(history.test_loss[-1])
    else:
        with torch.no_grad():
            snapshot = {name: value.detach() for name, value in leaves.items()}
            history.train_loss_per_step.append(
                per_network_loss(shared_input(snapshot, x_train), y_train, config.loss).tolist())
        history.test_loss_per_step.append(test_loss())
    return history


def _check_finite(losses: torch.Tensor, step: int, config: TrainingConfig, what: str) -> None:
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        network = int((~finite).nonzero()[0, 0])
        raise DivergenceError(step, config.learning_rate, config.optimizer, network,
                              f"{what} {config.loss}", float(losses[network].detach()))
