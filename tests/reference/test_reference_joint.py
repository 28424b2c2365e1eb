"""reference.joint (exact joint law of the NTK matrix by Gaussian conditioning) against
brute-force NTKs of real torch networks, against reference.ExactLaw, and against itself.

Brute force: tests/reference/reference_brute_force.py (independent torch networks, explicit
backprop, itself checked against torch.autograd below).

The main check (``test_entries_match_torch_networks`` and ``test_p_values_are_uniform``):
for every configuration in CONFIGS, k = 3 inputs (one of norm 1.3; degenerate sets in two
configurations) and EVERY distinct entry of the k x k (x O x O) matrix, a two-sample KS test
between DRAWS real networks and DRAWS exact draws -- once with the entry taken from the
general k-input sampler (JointLaw) and once, for one output, from the pair sampler
(JointLaw.entry -> EntryLaw).  Every KS test uses its own networks and its own exact draws,
so all p-values are independent.  Under the null each p-value is uniform, or stochastically
larger where the law has atoms (dead ReLU networks, constant entries of a zero input), which
only makes both checks more conservative.  False alarms:
  * per configuration, every p-value > ALPHA / (number of p-values in the whole table)
    (Bonferroni over the table): at most ALPHA = 1e-3 for all configurations together;
  * the collection of p-values against U(0, 1), one-sided KS (too many small p-values):
    at most 1e-3.
``test_wrong_laws_are_rejected`` shows the same machinery rejects a law with sigma_w2 off by
10% and a law without bias gradients.  All seeds are fixed, so a pass is reproducible.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

from reference import EntryLaw, ExactLaw, JointLaw, MomentSummary, moment_summary, summarize_moments
from reference_brute_force import ntk_matrix_autograd, ntk_matrix_batched

DRAWS = 2000          # per side of every KS test
ALPHA = 1e-3          # family-wise false-alarm budget of each of the two checks


def _three_inputs(dim: int, kind: str = "generic") -> np.ndarray:
    """k = 3 inputs as rows [3, dim], rotated by a fixed random orthogonal map.

    generic: |x1| = |x2| = 1, |x3| = 1.3, cosines 0.6 (x1, x2), 0.3 (x1, x3), -0.2 (x2, x3).
    duplicate: x1, x1, 1.3 x1 (rank 1).   zero: 0, x1, 1.3 x1 (a zero input, rank 1).
    """
    unit_gram = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, -0.2], [0.3, -0.2, 1.0]])
    coords = np.linalg.cholesky(unit_gram)                     # rows have that Gram
    coords[2] *= 1.3
    if kind == "duplicate":
        coords = np.stack([coords[0], coords[0], 1.3 * coords[0]])
    elif kind == "zero":
        coords = np.stack([0.0 * coords[0], coords[0], 1.3 * coords[0]])
    padded = np.zeros((3, dim))
    width = min(3, dim)
    padded[:, :width] = coords[:, :width]
    rotation, _ = np.linalg.qr(np.random.default_rng(dim).standard_normal((dim, dim)))
    return padded @ rotation.T


# (id, widths, sigma_w2, network keywords, input kind)
CONFIGS = [
    ("relu-eoc", (6, 8, 8, 8, 8), 2.0, {}, "generic"),
    ("relu-bias", (5, 7, 9, 6), 3.0, dict(sigma_b2=0.3), "generic"),
    ("tanh-bias", (6, 8, 8, 8, 8), 1.5, dict(activation="tanh", sigma_b2=0.2), "generic"),
    ("erf-bias", (3, 12, 12, 12), 2.5, dict(activation="erf", sigma_b2=0.1), "generic"),
    ("relu-depth7", (4,) + (10,) * 7, 2.0, {}, "generic"),
    ("relu-width4-frozen", (8, 4, 4, 4, 4), 2.0, dict(trainable_bias=False), "generic"),
    ("tanh-frozen", (10, 32, 32), 1.0, dict(activation="tanh", trainable_bias=False), "generic"),
    ("relu-ntk-param", (6, 16, 16, 16), 2.0, dict(sigma_b2=0.5, parametrization="ntk"), "generic"),
    ("erf-two-outputs", (5, 6, 6, 6), 1.8, dict(activation="erf", sigma_b2=0.3, output_dim=2), "generic"),
    ("relu-ordered-unequal", (7, 32, 16, 8), 1.2, dict(sigma_b2=0.05), "generic"),
    ("linear-bias", (4, 5, 5, 5), 1.0, dict(activation="linear", sigma_b2=0.2), "generic"),
    ("relu-duplicate-inputs", (5, 6, 6, 6), 2.0, {}, "duplicate"),
    ("tanh-zero-input", (5, 6, 6, 6), 1.5, dict(activation="tanh", sigma_b2=0.3), "zero"),
]
IDS = [c[0] for c in CONFIGS]


def _entries(k: int, outputs: int):
    """Distinct entries (a, b, i, j) of Theta up to the symmetry Theta[a,b,i,j] = Theta[b,a,j,i]."""
    index = [(a, i) for a in range(k) for i in range(outputs)]
    return [(a, b, i, j) for p, (a, i) in enumerate(index) for (b, j) in index[p:]]


def _seed(*parts) -> int:
    return int(np.random.SeedSequence([sum(map(ord, str(p))) for p in parts]).generate_state(1)[0])


@pytest.fixture(scope="module")
def ks_table():
    """{config id: [(path, entry, p-value)]} for every configuration (module docstring)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        table = {}
        for name, widths, sigma_w2, network, kind in CONFIGS:
            inputs = _three_inputs(widths[0], kind)
            law = JointLaw.from_inputs(widths, sigma_w2, inputs, **network)
            outputs = network.get("output_dim", 1)
            entries = _entries(3, outputs)
            paths = ["joint"] + (["entry"] if outputs == 1 else [])
            count = len(entries) * len(paths)
            brute = ntk_matrix_batched(widths, sigma_w2, inputs, count * DRAWS, _seed(name, "torch"),
                                       batch=4 * DRAWS, **network)
            joint = law.sample(len(entries) * DRAWS, np.random.default_rng(_seed(name, "joint")))
            if outputs == 1:
                joint = joint[..., None, None]
            rows, block = [], 0
            for path in paths:
                for e, (a, b, i, j) in enumerate(entries):
                    real = brute[block * DRAWS:(block + 1) * DRAWS, a, b, i, j]
                    block += 1
                    if path == "joint":
                        exact = joint[e * DRAWS:(e + 1) * DRAWS, a, b, i, j]
                    else:
                        exact = law.entry(a, b).sample(DRAWS, np.random.default_rng(_seed(name, a, b)))
                    rows.append((path, (a, b, i, j), float(stats.ks_2samp(real, exact).pvalue)))
            table[name] = rows
        return table
    finally:
        torch.set_num_threads(threads)


def _table_size(table) -> int:
    return sum(len(rows) for rows in table.values())


@pytest.mark.parametrize("name", IDS)
def test_entries_match_torch_networks(ks_table, name):
    """Every entry of this configuration, both samplers: KS p > ALPHA / (table size)."""
    threshold = ALPHA / _table_size(ks_table)
    low = [(path, entry, p) for path, entry, p in ks_table[name] if p <= threshold]
    assert not low, f"{name}: KS rejects the exact law (threshold {threshold:.1e}): {low}"


def test_p_values_are_uniform(ks_table):
    """All p-values of the table together: one-sided KS against U(0, 1) (alternative: the
    p-values are stochastically smaller), p > ALPHA; independent by construction."""
    p_values = np.array([p for rows in ks_table.values() for _, _, p in rows])
    assert p_values.size >= 150
    result = stats.kstest(p_values, "uniform", alternative="greater")
    assert result.pvalue > ALPHA, (result, np.sort(p_values)[:10])


def test_brute_force_equals_autograd():
    """The brute force itself: explicit batched backprop equals torch.autograd over every
    trainable parameter, for each activation, bias setting, parametrization and O = 2."""
    inputs = _three_inputs(5)
    for activation in ("relu", "tanh", "erf", "linear"):
        for network in (dict(), dict(sigma_b2=0.3), dict(trainable_bias=False),
                        dict(sigma_b2=0.2, parametrization="ntk", output_dim=2)):
            auto = ntk_matrix_autograd((5, 7, 6), 1.7, inputs, 3, activation=activation, **network)
            batched = ntk_matrix_batched((5, 7, 6), 1.7, inputs, 1, 3, activation=activation, **network)[0]
            np.testing.assert_allclose(batched, auto, rtol=1e-12, atol=1e-12)


def _wrong_table(law_kwargs, truth_kwargs, widths, sigma_w2, wrong_sigma_w2):
    inputs = _three_inputs(widths[0])
    entries = _entries(3, 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        brute = ntk_matrix_batched(widths, sigma_w2, inputs, len(entries) * DRAWS, 99, batch=4 * DRAWS,
                                   **truth_kwargs)[..., 0, 0]
    finally:
        torch.set_num_threads(threads)
    wrong = JointLaw.from_inputs(widths, wrong_sigma_w2, inputs, **law_kwargs)
    draws = wrong.sample(len(entries) * DRAWS, np.random.default_rng(98))
    return np.array([stats.ks_2samp(brute[e * DRAWS:(e + 1) * DRAWS, a, b],
                                    draws[e * DRAWS:(e + 1) * DRAWS, a, b]).pvalue
                     for e, (a, b, _, _) in enumerate(entries)])


@pytest.mark.parametrize("case", ["sigma_w2 off by 10%", "bias gradients dropped"])
def test_wrong_laws_are_rejected(case):
    """The KS machinery above has power: a law with sigma_w2 10% too large, and a law whose
    NTK omits the bias gradients, are rejected on the relu-eoc configuration at DRAWS draws
    per side (uniformity p-value < 1e-6 and some entry below the per-test threshold of the
    table, ALPHA / 150; observed: uniformity p 6e-21 with the smallest entry p 1e-11, and
    uniformity p 0 in floating point with entry p-values below 1e-50).  Seeded."""
    widths, sigma_w2 = (6, 8, 8, 8, 8), 2.0
    if case.startswith("sigma_w2"):
        p = _wrong_table({}, {}, widths, sigma_w2, 1.1 * sigma_w2)
    else:
        p = _wrong_table(dict(trainable_bias=False), {}, widths, sigma_w2, sigma_w2)
    assert stats.kstest(p, "uniform", alternative="greater").pvalue < 1e-6, p
    assert p.min() < ALPHA / 150, p


# ---------------------------------------------------------------------------------------------
# against the exact diagonal law (relu, sigma_b2 = 0)
# ---------------------------------------------------------------------------------------------
EXACT_CONFIGS = [
    # (widths, sigma_w2, trainable_bias, parametrization, |x|^2)
    ((6, 8, 8, 8, 8), 2.0, True, "standard", 1.0),
    ((4, 6, 6, 6, 6), 2.0, True, "standard", 1.7),
    ((3, 4, 4, 4, 4, 4), 1.0, True, "standard", 1.0),     # width 4: dead layers
    ((5, 8, 8, 8), 3.0, False, "standard", 0.6),
    ((10, 10, 10, 10), 2.0, True, "ntk", 1.0),
]


@pytest.mark.parametrize("cfg", EXACT_CONFIGS, ids=lambda c: f"w{'-'.join(map(str, c[0]))}_s{c[1]}_{c[3]}")
@pytest.mark.parametrize("path", ["diagonal", "pair-duplicate", "general-duplicate"])
def test_diagonal_matches_exact_law(cfg, path):
    """Theta(x, x) from the one-input path, from the pair path with x twice (the duplicate
    rank-1 case of the Gram-Schmidt), and from the general path with x three times, against
    reference.ExactLaw: two-sample KS against 10^5 exact draws (p > 1e-4) and the sample mean and
    second moment within 4.5 Monte Carlo standard errors of the exact moments.  False alarms
    per test <= 1e-4 + 2 * 7e-6 (normal approximation of the moments); 15 tests <= 2e-3."""
    widths, sigma_w2, bias, par, norm_sq = cfg
    draws = 50_000 if path != "general-duplicate" else 20_000
    k = {"diagonal": 1, "pair-duplicate": 2, "general-duplicate": 3}[path]
    law = JointLaw(widths, sigma_w2, np.full((k, k), norm_sq), trainable_bias=bias, parametrization=par)
    theta = law.sample(draws, np.random.default_rng(_seed(cfg, path)))[:, 0, k - 1]
    exact = ExactLaw(widths, sigma_w2, trainable_bias=bias, parametrization=par, input_norm_sq=norm_sq)
    reference = exact.sample(100_000, np.random.default_rng(_seed(cfg, "exact")))
    assert stats.ks_2samp(theta, reference).pvalue > 1e-4
    summary = summarize_moments(theta)
    assert abs(summary.mean - exact.mean()) < 4.5 * summary.mean_error, (summary, exact.mean())
    assert abs(summary.second_moment - exact.second_moment()) < 4.5 * summary.second_moment_error, (
        summary, exact.second_moment())


def test_pair_path_matches_general_path():
    """k = 2 through the closed-form path and through the general (Householder) path, for
    distinct, duplicate, proportional and zero inputs at width 4 (many dead units and
    single-neuron layers): KS on each of the 3 entries, 20000 draws per side, p > 1e-4
    (false alarm <= 12 * 3 * 1e-4 ~ 4e-3 for all)."""
    grams = [[[1.7, 1.0], [1.0, 1.2]], [[1.0, 1.0], [1.0, 1.0]], [[1.0, 2.0], [2.0, 4.0]], [[0.0, 0.0], [0.0, 1.0]]]
    for g, gram in enumerate(grams):
        for n, network in enumerate((dict(), dict(trainable_bias=False), dict(activation="tanh", sigma_b2=0.4))):
            law = JointLaw((3, 4, 4, 4), 2.0, gram, **network)
            assert law.uses_pair_path
            pair = law.sample(20_000, np.random.default_rng([g, n, 1]))
            general = np.concatenate([law._general_chunk(2000, np.random.default_rng([g, n, 2, i])) for i in range(10)])
            for a, b in ((0, 0), (0, 1), (1, 1)):
                p = stats.ks_2samp(pair[:, a, b], general[:, a, b]).pvalue
                assert p > 1e-4, (gram, network, (a, b), p)


# ---------------------------------------------------------------------------------------------
# exact facts, shapes, determinism, protocol
# ---------------------------------------------------------------------------------------------
def test_zero_input_gives_exactly_the_output_bias_term():
    """A zero input through a zero-bias relu net: every h^l = 0 and relu'(0) = 0, so only the
    output bias survives: Theta(0, y) = Theta(0, 0) = beta (1 standard, 0 frozen or NTK)."""
    for network, beta in ((dict(), 1.0), (dict(trainable_bias=False), 0.0), (dict(parametrization="ntk"), 0.0)):
        for gram in ([[0.0, 0.0], [0.0, 1.0]], [[0.0, 0.0, 0.0], [0.0, 1.0, 0.3], [0.0, 0.3, 1.0]]):
            theta = JointLaw((3, 5, 5, 5), 2.0, gram, **network).sample(500, np.random.default_rng(0))
            assert np.all(theta[:, 0, :] == beta) and np.all(theta[:, :, 0] == beta)


def test_shapes_symmetry_and_determinism():
    gram = _three_inputs(4) @ _three_inputs(4).T
    law = JointLaw((4, 6, 6), 2.0, gram, output_dim=3, sigma_b2=0.1)
    theta = law.sample(50, np.random.default_rng(1))
    assert theta.shape == (50, 3, 3, 3, 3)
    np.testing.assert_allclose(theta, theta.transpose(0, 2, 1, 4, 3), rtol=1e-12)
    assert JointLaw((4, 6, 6), 2.0, gram).sample(7, np.random.default_rng(1)).shape == (7, 3, 3)
    pair = JointLaw((4, 6, 6), 2.0, gram[:2, :2])
    assert pair.sample(0, np.random.default_rng(0)).shape == (0, 2, 2)
    big = 3 * pair.chunk_size() + 5                      # several chunks, one partial
    one = pair.sample(big, np.random.default_rng(2))
    np.testing.assert_array_equal(one, pair.sample(big, np.random.default_rng(2), workers=2))
    np.testing.assert_allclose(one, one.transpose(0, 2, 1), rtol=1e-12)
    entry = pair.entry(0, 1)
    assert entry.sample(11, np.random.default_rng(0)).shape == (11,)


def test_entry_law_protocol_and_keys():
    """EntryLaw follows the duck-typed protocol of reference.ExactLaw (sample -> [size],
    key() -> str, depth), and key() changes with every parameter."""
    base = dict(inner_product=0.3, norm_sq_x=1.0, norm_sq_y=1.3, sigma_b2=0.1, activation="tanh",
                trainable_bias=True, parametrization="standard")
    law = EntryLaw((5, 8, 8), 1.5, **base)
    assert law.depth == 2 and isinstance(law.key(), str) and not law.is_diagonal
    assert law.key() == EntryLaw((5, 8, 8), 1.5, **base).key()
    variants = [EntryLaw((5, 8, 9), 1.5, **base), EntryLaw((5, 8, 8), 1.6, **base)]
    for name, value in (("inner_product", 0.2), ("norm_sq_x", 1.1), ("norm_sq_y", 1.2), ("sigma_b2", 0.2),
                        ("activation", "erf"), ("parametrization", "ntk")):
        variants.append(EntryLaw((5, 8, 8), 1.5, **{**base, name: value}))
    variants.append(EntryLaw((5, 8, 8), 1.5, **{**base, "sigma_b2": 0.0, "trainable_bias": False}))
    keys = {law.key()} | {v.key() for v in variants}
    assert len(keys) == len(variants) + 1
    assert EntryLaw((5, 8, 8), 1.5, inner_product=1.3, norm_sq_x=1.3, norm_sq_y=1.3).is_diagonal
    joint = JointLaw((5, 8, 8), 1.5, [[1.0, 0.3], [0.3, 1.3]], sigma_b2=0.1, activation="tanh")
    assert joint.entry(0, 1).key() == law.key() and joint.entry(1, 1).is_diagonal
    assert joint.key() != JointLaw((5, 8, 8), 1.5, [[1.0, 0.3], [0.3, 1.2]], sigma_b2=0.1, activation="tanh").key()


def test_moment_summary_errors_are_calibrated():
    """The reported standard errors match the spread of independent replicates: 40 replicates
    of 2000 draws (tanh, ordered, light tails); the replicate standard deviation of the mean and
    of the dispersion estimate is within a factor 1.6 of the median reported error (for 40
    replicates the sample sd is within +-30% of the true sd with probability > 0.99)."""
    law = EntryLaw((6, 10, 10, 10), 1.2, inner_product=0.5, sigma_b2=0.2, activation="tanh")
    rng = np.random.default_rng(5)
    summaries = [moment_summary(law, 2000, rng) for _ in range(40)]
    assert all(isinstance(s, MomentSummary) and s.draws == 2000 for s in summaries)
    for value, error in (("mean", "mean_error"), ("dispersion", "dispersion_error")):
        spread = np.std([getattr(s, value) for s in summaries], ddof=1)
        reported = np.median([getattr(s, error) for s in summaries])
        assert 1 / 1.6 < spread / reported < 1.6, (value, spread, reported)
    exact = ExactLaw((6, 8, 8, 8), 2.0)                  # any law with sample(draws, rng)
    s = moment_summary(exact, 50_000, np.random.default_rng(6))
    assert abs(s.mean - exact.mean()) < 4.5 * s.mean_error
    assert abs(s.dispersion - exact.dispersion()) < 4.5 * s.dispersion_error


# ---------------------------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, needle", [
    (lambda: JointLaw((3,), 2.0, [[1.0]]), "widths"),
    (lambda: JointLaw((3, 0), 2.0, [[1.0]]), "widths[1]"),
    (lambda: JointLaw((3, 4), 0.0, [[1.0]]), "sigma_w2"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]], sigma_b2=-0.1), "sigma_b2"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]], activation="gelu"), "activation"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]], parametrization="mup"), "parametrization"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]], output_dim=0), "output_dim"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]], trainable_bias=False, sigma_b2=0.1), "sigma_b2"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]], trainable_bias="yes"), "trainable_bias"),
    (lambda: JointLaw((3, 4), 2.0, [1.0, 2.0]), "gram"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0, 0.5], [0.4, 1.0]]), "gram"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0, 2.0], [2.0, 1.0]]), "gram"),
    (lambda: JointLaw((3, 4), 2.0, [[float("nan")]]), "gram"),
    (lambda: JointLaw((1, 4), 2.0, np.eye(2)), "gram"),
    (lambda: JointLaw.from_inputs((3, 4), 2.0, np.ones((2, 4))), "inputs"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]]).sample(-1, np.random.default_rng(0)), "draws"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]]).sample(3, 0), "rng"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]]).sample(3, np.random.default_rng(0), workers=0), "workers"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]]).entry(0, 1), "b"),
    (lambda: JointLaw((3, 4), 2.0, [[1.0]], output_dim=2).entry(0, 0), "output_dim"),
    (lambda: EntryLaw((3, 4), 2.0, inner_product=1.5), "inner_product"),
    (lambda: EntryLaw((3, 4), 2.0, inner_product="x"), "inner_product"),
    (lambda: EntryLaw((3, 4), 2.0, inner_product=0.0, norm_sq_x=-1.0), "norm_sq_x"),
    (lambda: EntryLaw((3, 4), 2.0, inner_product=0.0, norm_sq_y=float("inf")), "norm_sq_y"),
    (lambda: moment_summary(EntryLaw((3, 4), 2.0, inner_product=0.0), 1, np.random.default_rng(0)), "draws"),
    (lambda: summarize_moments([1.0]), "theta"),
])
def test_bad_arguments_raise_value_error_naming_the_argument(call, needle):
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_joint_module_never_imports_torch_or_harness():
    code = ("import sys, numpy, reference; "
            "reference.JointLaw((3, 4, 4), 2.0, numpy.eye(3), output_dim=2).sample(5, numpy.random.default_rng(0)); "
            "reference.EntryLaw((3, 4, 4), 2.0, inner_product=0.5).moments(10, numpy.random.default_rng(0)); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'harness')]; "
            "assert not bad, bad")
    root = pathlib.Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
