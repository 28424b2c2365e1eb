"""Data loading, the probe set, the chunked probe NTK and the training loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk import get_implementation
from harness.training import data, probe
from harness.training.loop import DivergenceError, TrainingConfig, per_network_loss, train


# ------------------------------------------------------------------ data
def test_digits_shapes_split_and_unit_norm():
    ds = data.load_dataset("digits", probe_per_class=4, test_fraction=0.25, data_seed=3)
    assert ds.input_dim == 64 and ds.num_classes == 10
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    assert ds.x_test.shape[0] == pytest.approx(1797 * 0.25, abs=10)
    np.testing.assert_allclose(np.linalg.norm(ds.x_train, axis=1), 1.0, rtol=1e-12)
    assert ds.x_probe.shape == (40, 64)
    np.testing.assert_array_equal(ds.y_probe, np.repeat(np.arange(10), 4))  # grouped by class
    # the probe set is made of training samples
    train_rows = {row.tobytes() for row in ds.x_train}
    assert all(row.tobytes() in train_rows for row in ds.x_probe)
    # seeded: same seed, same split; other seed, other split
    again = data.load_dataset("digits", probe_per_class=4, data_seed=3)
    np.testing.assert_array_equal(again.x_probe, ds.x_probe)
    other = data.load_dataset("digits", probe_per_class=4, data_seed=4)
    assert not np.array_equal(other.x_probe, ds.x_probe)


def test_standardize_and_none():
    x = np.array([[1.0, 2.0, 5.0], [3.0, 2.0, 7.0]])
    z = data.normalize(x, "standardize")
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z[:, 1], 0.0)  # constant feature stays 0
    np.testing.assert_array_equal(data.normalize(x, "none"), x)
    with pytest.raises(data.DataError, match="unit_norm, pixels, standardize, none"):
        data.normalize(x, "whiten")
    np.testing.assert_array_equal(data.normalize(x, "pixels", pixel_max=255.0), x / 255.0)
    with pytest.raises(data.DataError, match="no pixel range"):
        data.normalize(x, "pixels")


def test_teacher_student_is_balanced_and_seeded():
    ds = data.load_dataset("teacher_student", dataset_size=400, input_dim=8, classes=4, probe_per_class=5,
                           test_fraction=0.2)
    assert ds.input_dim == 8 and ds.num_classes == 4
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_test]))
    np.testing.assert_array_equal(counts, [100, 100, 100, 100])
    assert ds.x_probe.shape == (20, 8)


def test_unknown_dataset_names_the_allowed_ones():
    with pytest.raises(data.DataError, match="digits, mnist, teacher_student"):
        data.load_dataset("cifar")


def test_probe_larger_than_data_fails_with_the_sizes():
    with pytest.raises(data.DataError) as info:
        data.load_dataset("digits", probe_per_class=200)
    message = str(info.value)
    assert "probe_per_class = 200" in message and "2000 training samples" in message
    assert "has only" in message and "test_fraction = 0.25" in message


# ------------------------------------------------------------------ probe NTK
@pytest.mark.parametrize("output_dim", [1, 3])
def test_chunked_probe_ntk_equals_unchunked(output_dim):
    arch = Architecture(widths=(5, 7, 6), sigma_w2=2.0, output_dim=output_dim)
    f = MLP(arch)
    params = unstack(init_parameters(arch, 0, [0], dtype=torch.float64), 0)
    x = torch.randn(11, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    implementation = get_implementation("jacobian")
    whole = probe.probe_ntk(implementation, f, params, x, output_dim, memory_budget_bytes=2**40)
    p = arch.parameter_count()
    budget = 2 * 4 * output_dim * p * 8  # two Jacobians of 4 inputs: chunks 4, 4, 3
    assert probe.chunk_size(11, output_dim, p, 8, budget) == 4
    chunked = probe.probe_ntk(implementation, f, params, x, output_dim, memory_budget_bytes=budget)
    tiny = probe.probe_ntk(implementation, f, params, x, output_dim, memory_budget_bytes=1)  # chunks of 1
    assert whole.shape == (11, 11, output_dim, output_dim)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(tiny, whole, rtol=1e-12, atol=1e-12)
    direct = implementation(f, params, x, x)
    torch.testing.assert_close(probe.output_trace(whole), direct if output_dim == 1 else
                               torch.diagonal(direct, dim1=2, dim2=3).sum(-1))


# ------------------------------------------------------------------ training loop
def _tiny_problem(lr, optimizer="sgd", steps=20, seeds=2):
    arch = Architecture(widths=(4, 8), sigma_w2=2.0, output_dim=3)
    f = MLP(arch)
    params = init_parameters(arch, 0, range(seeds), dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, dtype=torch.float64, generator=g)
    y = torch.randint(0, 3, (30,), generator=g)
    config = TrainingConfig(optimizer=optimizer, learning_rate=lr, steps=steps, batch_size=10,
                            checkpoints=(0, steps // 2, steps))
    return f, params, x, y, config


def test_stacked_training_equals_separate_trainings():
    f, params, x, y, config = _tiny_problem(0.1, "adam")
    seen = {}
    train(f, params, x, y, x[:0], y[:0], config, seed=5, on_checkpoint=lambda t, p: seen.__setitem__(t, p))
    # network 1 trained alone must end where it ended in the stack: same init, same batches, same updates
    from harness.training.loop import batch_indices
    leaves = {k: v[1].clone().requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.Adam(list(leaves.values()), lr=0.1)
    order = batch_indices(30, 10, config.steps, 5, 1)
    for step in range(config.steps):
        idx = torch.as_tensor(order[step])
        loss = per_network_loss(f(leaves, x[idx]).unsqueeze(0), y[idx], "mse")[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name in leaves:
        torch.testing.assert_close(seen[config.steps][name][1], leaves[name].detach(), rtol=1e-10, atol=1e-12)


def test_training_reduces_the_loss_and_records_checkpoints():
    f, params, x, y, config = _tiny_problem(0.5, "sgd", steps=60)
    history = train(f, params, x, y, x[:10], y[:10], config, seed=0)
    assert history.checkpoints == [0, 30, 60]
    assert len(history.train_loss) == 3 and len(history.train_loss[0]) == 2
    assert max(history.train_loss[-1]) < min(history.train_loss[0])


@pytest.mark.parametrize("batch_size", [100, 10])
def test_losses_at_every_step(batch_size):
    """State t's losses: in full-batch training the training loss of every state is the full
    training set's, equal to the checkpoints' own evaluation; the test loss is always the full
    test set's; with minibatches the recorded training loss is the minibatch's (but the last)."""
    f, params, x, y, config = _tiny_problem(0.3, "adam", steps=12)
    config = TrainingConfig(optimizer="adam", learning_rate=0.3, steps=12, batch_size=batch_size,
                            checkpoints=(0, 5, 12))
    history = train(f, params, x, y, x[:7], y[:7], config, seed=0)
    assert len(history.train_loss_per_step) == len(history.test_loss_per_step) == 13
    assert all(len(row) == 2 for row in history.train_loss_per_step)
    for c, step in enumerate(history.checkpoints):
        assert history.test_loss_per_step[step] == pytest.approx(history.test_loss[c], rel=1e-12)
        if batch_size >= 30 or step == 12:
            assert history.train_loss_per_step[step] == pytest.approx(history.train_loss[c], rel=1e-12)
    if batch_size < 30:   # a minibatch of 10 of 30 images is not the full set
        assert history.train_loss_per_step[0] != pytest.approx(history.train_loss[0], rel=1e-6)


def test_divergence_names_the_step_and_the_learning_rate():
    f, params, x, y, config = _tiny_problem(1e6, "sgd", steps=50)
    with pytest.raises(DivergenceError) as info:
        train(f, params, x, y, x[:0], y[:0], config, seed=0)
    message = str(info.value)
    assert f"at step {info.value.step} " in message and "learning_rate = 1e+06" in message
    assert 1 <= info.value.step <= 50


def test_unknown_optimizer_and_loss_name_the_allowed_ones():
    with pytest.raises(ValueError, match="sgd, adam"):
        TrainingConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="mse, cross_entropy"):
        TrainingConfig(loss="hinge")


def test_cross_entropy_loss_by_hand():
    outputs = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])  # one network, two samples, two classes
    labels = torch.tensor([0, 1])
    expected = (np.log(2) + (2 + np.log(1 + np.exp(-2.0)))) / 2
    assert per_network_loss(outputs, labels, "cross_entropy").item() == pytest.approx(expected)
    # mse with one-hot targets: mean of (0-1)^2, 0^2, (2-0)^2, (0-1)^2 = 6/4
    assert per_network_loss(outputs, labels, "mse").item() == pytest.approx(1.5)


def _write_idx(path, array):
    """An IDX file of unsigned bytes, as the MNIST files are (magic 0 0 8 ndim, big-endian sizes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_idx_files_the_test_writes(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(200, 28, 28))
    labels = np.repeat(np.arange(10), 20)
    _write_idx(tmp_path / "train-images-idx3-ubyte", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    data._mnist.cache_clear()
    monkeypatch.setenv(data.MNIST_VARIABLE, str(tmp_path))
    ds = data.load_dataset("mnist", normalization="pixels", probe_per_class=3, dataset_size=10**6)
    assert ds.input_dim == 784 and ds.num_classes == 10
    assert ds.x_train.max() <= 1.0 and ds.x_train.min() >= 0.0
    # pixels / 255, not normalized per input: the first training image is an original image / 255
    first = images.reshape(200, -1) / 255.0
    assert any(np.array_equal(ds.x_train[0], row) for row in first)
    subset = data.load_dataset("mnist", normalization="unit_norm", probe_per_class=3, dataset_size=100)
    assert subset.x_train.shape[0] + subset.x_test.shape[0] == 100


def test_mnist_without_files_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(data.MNIST_VARIABLE, raising=False)
    with pytest.raises(data.DataError, match=data.MNIST_VARIABLE):
        data.load_dataset("mnist")
    monkeypatch.setenv(data.MNIST_VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(data.DataError, match="does not exist"):
        data.load_dataset("mnist")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.read_idx(tmp_path / "bad")
