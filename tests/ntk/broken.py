"""Deliberately broken NTK implementations: each must be caught by the agreement cases.

Every function here has the implementation signature ``fn(f, params, x1, x2)`` and is
wrong in one specific way; :data:`BROKEN` maps its name to a phrase the failing check's
message must contain (so a test knows not only that it was caught, but caught for the
right reason). Usable from the command line too::

    python -m pytest cases/agreement -m quick --ntk-implementation tests.ntk.broken:drops_biases
"""
from __future__ import annotations

import torch

from harness.ntk.autograd_loop import autograd_loop_ntk
from harness.ntk.jacobian import jacobian_ntk


def _restricted(f, params, x1, x2, keep):
    """The reference kernel over only the parameters whose name passes ``keep``."""
    fixed = dict(params)

    def g(sub, x):
        return f({**fixed, **sub}, x)

    return jacobian_ntk(g, {n: p for n, p in params.items() if keep(n)}, x1, x2)


def _last_layer(params) -> int:
    return max(int(name.split(".")[1]) for name in params)


def drops_biases(f, params, x1, x2):
    """Forgets the bias gradients (the error theory.md warns about)."""
    return _restricted(f, params, x1, x2, lambda n: not n.endswith(".bias"))


def drops_readout(f, params, x1, x2):
    """Leaves out the readout layer's weight and bias."""
    last = _last_layer(params)
    return _restricted(f, params, x1, x2, lambda n: not n.startswith(f"layers.{last}."))


def drops_hidden_layer(f, params, x1, x2):
    """Leaves out the first hidden layer (layers.0.*)."""
    return _restricted(f, params, x1, x2, lambda n: not n.startswith("layers.0."))


def drops_first_weight(f, params, x1, x2):
    """Leaves out one weight matrix only."""
    return _restricted(f, params, x1, x2, lambda n: n != "layers.0.weight")


_STALE: dict = {}


def stale_parameters(f, params, x1, x2):
    """Caches the parameters of the first network of each architecture and reuses them."""
    key = tuple((name, tuple(p.shape), p.dtype) for name, p in params.items())
    cached = _STALE.setdefault(key, {name: p.clone() for name, p in params.items()})
    return jacobian_ntk(f, cached, x1, x2)


_RESULTS: dict = {}


def cached_results(f, params, x1, x2):
    """Memoizes results by input shapes: the second network gets the first one's kernel."""
    key = (tuple(x1.shape), tuple(x2.shape), x1.dtype, len(params))
    if key not in _RESULTS:
        _RESULTS[key] = jacobian_ntk(f, params, x1, x2)
    return _RESULTS[key]


def wrong_shape(f, params, x1, x2):
    """Returns the kernel flattened."""
    return jacobian_ntk(f, params, x1, x2).reshape(-1)


def swapped_inputs(f, params, x1, x2):
    """Returns K(x2, x1), [N2, N1, ...], instead of K(x1, x2)."""
    return jacobian_ntk(f, params, x2, x1)


def wrong_dtype(f, params, x1, x2):
    """Returns float32 for float64 inputs and float64 for float32 ones."""
    result = jacobian_ntk(f, params, x1, x2)
    return result.to(torch.float32 if result.dtype == torch.float64 else torch.float64)


def low_precision(f, params, x1, x2):
    """Computes in float32 and casts back: misses float64's 1e-10 agreement."""
    result = jacobian_ntk(f, {n: p.float() for n, p in params.items()}, x1.float(), x2.float())
    return result.to(x1.dtype)


def returns_nan(f, params, x1, x2):
    """One NaN entry."""
    result = jacobian_ntk(f, params, x1, x2).clone()
    result.view(-1)[0] = float("nan")
    return result


def raises_inside(f, params, x1, x2):
    """An exception inside the user's code."""
    raise RuntimeError("deliberate failure inside the implementation")


def returns_numpy(f, params, x1, x2):
    """Returns a numpy array, not a tensor."""
    return jacobian_ntk(f, params, x1, x2).cpu().numpy()


def wrong_signature(f, params, x):
    """Takes three arguments instead of four."""
    return jacobian_ntk(f, params, x, x)


def unsymmetric(f, params, x1, x2):
    """Adds 1e-3 of the largest entry above the diagonal: K(x, x) is not symmetric."""
    result = jacobian_ntk(f, params, x1, x2)
    n1, n2 = result.shape[:2]
    upper = torch.ones(n1, n2, dtype=result.dtype, device=result.device).triu(1)
    while upper.dim() < result.dim():
        upper = upper[..., None]
    return result + 1e-3 * result.abs().max() * upper


def scaled(f, params, x1, x2):
    """Off by a factor 1 + 1e-6: only float64's tolerance sees it."""
    return jacobian_ntk(f, params, x1, x2) * (1 + 1e-6)


def swapped_outputs(f, params, x1, x2):
    """For O > 1, returns Theta[a, b, j, i] instead of Theta[a, b, i, j]."""
    result = jacobian_ntk(f, params, x1, x2)
    return result.transpose(-1, -2) if result.dim() == 4 else result


def diagonal_outputs(f, params, x1, x2):
    """For O > 1, keeps only the i = j output blocks (a per-output NTK)."""
    result = jacobian_ntk(f, params, x1, x2)
    if result.dim() != 4:
        return result
    eye = torch.eye(result.shape[-1], dtype=result.dtype, device=result.device)
    return result * eye


def not_psd(f, params, x1, x2):
    """Symmetric but indefinite: subtracts a multiple of the identity where x1 == x2."""
    result = jacobian_ntk(f, params, x1, x2)
    if x1.shape == x2.shape and torch.equal(x1, x2):
        n = x1.shape[0]
        eye = torch.eye(n, dtype=result.dtype, device=result.device)
        while eye.dim() < result.dim():
            eye = eye[..., None]
        result = result - 2 * result.abs().max() * eye
    return result


def claims_vmappable(f, params, x1, x2):
    """Correct on one network but says ``vmappable = True`` while calling autograd.grad."""
    return autograd_loop_ntk(f, params, x1, x2)


claims_vmappable.vmappable = True


# name -> a phrase the failure message must contain
BROKEN: dict[str, str] = {
    "drops_biases": "without every bias",
    "drops_readout": "without the readout layer",
    "drops_hidden_layer": "without hidden layer 1",
    "drops_first_weight": "without layers.0.weight",
    "stale_parameters": "earlier network",
    "cached_results": "reused across calls",
    "wrong_shape": "has shape",
    "swapped_inputs": "has shape",
    "wrong_dtype": "expected torch.float",
    "low_precision": "relative error",
    "returns_nan": "returned NaN at entries",
    "raises_inside": "deliberate failure inside the implementation",
    "returns_numpy": "expected a torch.Tensor",
    "wrong_signature": "expected a callable fn(f, params, x1, x2)",
    "unsymmetric": "max|K - K^T|",
    "scaled": "times 1.000001",
    "swapped_outputs": "output indices swapped",
    "diagonal_outputs": "relative error",
    "not_psd": "smallest eigenvalue",
    "claims_vmappable": "fails under torch.func.vmap",
}


def mutates_parameters(f, params, x1, x2):
    """Correct result, but doubles the first weight matrix in place afterwards."""
    result = jacobian_ntk(f, params, x1, x2)
    params["layers.0.weight"].mul_(2)
    return result


BROKEN["mutates_parameters"] = "modified its arguments in place: layers.0.weight"


# ---------------------------------------------------------------------------------------
# Bugs that show only at depth, off the diagonal, for some call shapes, at exact zeros, or
# for several outputs: each is right on the small, generic calls the old agreement cases
# made, and wrong where networks are deep, kernels rectangular or square, inputs zero.
# ---------------------------------------------------------------------------------------
def _depth(params) -> int:
    return _last_layer(params)  # L hidden layers: layers.0 .. layers.L


def wrong_at_depth(f, params, x1, x2):
    """Right for networks of up to 6 hidden layers; deeper, the first layer's weight gradient
    is counted at half weight (as a truncated or mis-indexed layer loop would)."""
    full = jacobian_ntk(f, params, x1, x2)
    if _depth(params) <= 6:
        return full
    first = jacobian_ntk(lambda sub, x: f({**params, **sub}, x), {"layers.0.weight": params["layers.0.weight"]}, x1, x2)
    return full - 0.5 * first


wrong_at_depth.vmappable = True


def wrong_off_diagonal(f, params, x1, x2):
    """Right on every diagonal entry Theta(x, x); the off-diagonal entries are 1% too large."""
    full = jacobian_ntk(f, params, x1, x2)
    same = (x1[:, None, :] == x2[None, :, :]).all(-1).to(full.dtype)   # [N1, N2]: x1_a equals x2_b
    if full.dim() == 4:
        same = same[..., None, None]
    return full * (1.01 - 0.01 * same)


wrong_off_diagonal.vmappable = True


def wrong_for_single_input(f, params, x1, x2):
    """With one input in x1 (N1 = 1) it returns the kernel of x2 with itself's first row."""
    if x1.shape[0] == 1 and x2.shape[0] > 1:
        return jacobian_ntk(f, params, x2[:1], x2)
    return jacobian_ntk(f, params, x1, x2)


wrong_for_single_input.vmappable = True


def wrong_for_square_cross(f, params, x1, x2):
    """Assumes a square call K(x1, x2) with N1 = N2 is K(x1, x1): right for x2 is x1 and for
    rectangular calls, wrong for two different batches of equal size."""
    if x1.shape[0] == x2.shape[0]:
        return jacobian_ntk(f, params, x1, x1)
    return jacobian_ntk(f, params, x1, x2)


wrong_for_square_cross.vmappable = True


def wrong_derivative_at_zero(f, params, x1, x2):
    """The structured factorization with relu'(0) = 1 instead of autograd's 0: right wherever
    no pre-activation is exactly zero, wrong for zero inputs of zero-bias networks and in dead
    layers."""
    from harness.ntk import structured

    original = structured.ACTIVATION_DERIVATIVES["relu"]
    structured.ACTIVATION_DERIVATIVES["relu"] = lambda h: (h >= 0).to(h.dtype)
    try:
        return structured.structured_ntk(f, params, x1, x2)
    finally:
        structured.ACTIVATION_DERIVATIVES["relu"] = original


wrong_derivative_at_zero.vmappable = True


def output_sum(f, params, x1, x2):
    """For O outputs, the NTK of the summed output spread over the blocks: Theta_sum / O on the
    diagonal blocks i = j and zero elsewhere, which has the right trace over outputs."""
    full = jacobian_ntk(f, params, x1, x2)
    if full.dim() != 4:
        return full
    outputs = full.shape[-1]
    summed = full.sum(dim=(-1, -2))
    return summed[..., None, None] * torch.eye(outputs, dtype=full.dtype, device=full.device) / outputs


output_sum.vmappable = True


BROKEN.update({
    "wrong_at_depth": "relative error",
    "wrong_off_diagonal": "relative error",
    "wrong_for_single_input": "K[single] relative error",
    "wrong_for_square_cross": "K[square] relative error",
    "wrong_derivative_at_zero": "relative error",
    "output_sum": "relative error",
})


# ---------------------------------------------------------------- at the sizes and calls real implementations break
CHUNK = 64


def misplaces_last_chunk(f, params, x1, x2):
    """A chunked contraction over the rows of x1, 64 at a time, whose last partial chunk is written
    one row too low: exact up to N1 = 64 and whenever 64 divides N1, wrong above otherwise (the
    first row of the last chunk keeps its zero initialization; its last result is dropped)."""
    n1 = x1.shape[0]
    if n1 <= CHUNK or n1 % CHUNK == 0:
        return jacobian_ntk(f, params, x1, x2)
    out = torch.zeros((n1,) + tuple(jacobian_ntk(f, params, x1[:1], x2).shape[1:]), dtype=x1.dtype, device=x1.device)
    starts = list(range(0, n1, CHUNK))
    for start in starts:
        block = jacobian_ntk(f, params, x1[start:start + CHUNK], x2)
        if start == starts[-1]:
            out[start + 1:start + block.shape[0]] = block[:-1]
        else:
            out[start:start + block.shape[0]] = block
    return out


def special_cases_the_row_call(f, params, x1, x2):
    """Right everywhere but in the paper's own call K(X[0:1], X) -- one row that is a view of x2's
    first row -- where it returns the diagonal entry for every column (a shortcut for "the row
    of x0" that assumed every input equals x0)."""
    result = jacobian_ntk(f, params, x1, x2)
    same_row = (x1.shape[0] == 1 and x1 is not x2 and x1.untyped_storage().data_ptr() == x2.untyped_storage().data_ptr()
                and x1.storage_offset() == x2.storage_offset())
    if not same_row:
        return result
    return result[:, :1].expand_as(result).clone()


def ignores_storage_offset(f, params, x1, x2):
    """Reads each input tensor from the start of its storage, ignoring a view's offset (as an
    extension handed ``storage().data_ptr()`` would): right for whole tensors and for views that
    start at row 0, wrong for the later block x[split:] of a batch split into blocks (batched
    differs from unbatched)."""

    def from_storage(x):
        return torch.as_strided(x, x.shape, x.stride(), storage_offset=0) if x.storage_offset() else x

    a = from_storage(x1)
    return jacobian_ntk(f, params, a, a if x2 is x1 else from_storage(x2))


def _tf32(t: torch.Tensor) -> torch.Tensor:
    """Round float32 values to TF32's 10 explicit mantissa bits (round to nearest), as the tensor
    cores of Ampere and Hopper GPUs do to matmul operands with TF32 enabled."""
    bits = t.contiguous().view(torch.int32)
    rounded = (bits + 0x1000) & ~0x1FFF
    return rounded.view(torch.float32)


def tf32_contraction(f, params, x1, x2):
    """The Jacobian contraction of the reference with its operands rounded to TF32 (10 mantissa
    bits) and accumulated in float32: about 1e-4 relative error, the error of a float32
    implementation whose matmuls run in TF32 (many frameworks' default on recent GPUs)."""
    from harness.ntk.jacobian import _per_sample_jacobians

    j1 = _per_sample_jacobians(f, params, x1)
    j2 = j1 if x2 is x1 else _per_sample_jacobians(f, params, x2)
    total = None
    for name in j1:
        a = _tf32(j1[name].reshape(j1[name].shape[0], j1[name].shape[1], -1).float())
        b = _tf32(j2[name].reshape(j2[name].shape[0], j2[name].shape[1], -1).float())
        term = torch.einsum("aip,bjp->abij", a, b)
        total = term if total is None else total + term
    total = total.to(x1.dtype)
    return total[:, :, 0, 0] if total.shape[-1] == 1 else total


BROKEN.update({
    "misplaces_last_chunk": "relative error",
    "special_cases_the_row_call": "K[row] relative error",
    "ignores_storage_offset": "K[blocks]",
    "tf32_contraction": "relative error",
})


# ---------------------------------------------------------------------------------------
# Bugs whose diagnosis names the cause (harness.ntk.diagnosis.diagnose): DIAGNOSED maps each
# to the phrase the diagnosis must contain, and no other broken implementation's diagnosis may
# contain it (tests/ntk/test_agreement_kind.py).
# ---------------------------------------------------------------------------------------
def _relu_derivative_at_zero(value: float):
    def phi(h):
        return torch.relu(h) + value * (h == 0).to(h.dtype) * (h - h.detach())

    return phi


def relu_half_at_zero(f, params, x1, x2):
    """The reference on a copy of the MLP whose relu has derivative 1/2 at exactly 0 (as JAX's
    ``jnp.maximum(x, 0)``): right wherever no pre-activation is exactly 0."""
    import copy

    from harness.networks import MLP

    if not isinstance(f, MLP) or f.architecture.activation != "relu":
        return jacobian_ntk(f, params, x1, x2)
    other = copy.copy(f)
    other._phi = _relu_derivative_at_zero(0.5)
    return jacobian_ntk(other, params, x1, x2)


def float32_readout_weight(f, params, x1, x2):
    """Keeps a float32 copy of the readout weight (as a cached cast would) and computes the rest in
    the inputs' dtype: in float64 it is off by float32 rounding of that one tensor."""
    last = _last_layer(params)
    name = f"layers.{last}.weight"
    rounded = {**params, name: params[name].to(torch.float32).to(params[name].dtype)}
    return jacobian_ntk(f, rounded, x1, x2)


def counts_readout_twice(f, params, x1, x2):
    """Adds the readout layer's contribution a second time (a parameter list that holds it twice)."""
    last = _last_layer(params)
    return jacobian_ntk(f, params, x1, x2) + _restricted(f, params, x1, x2, lambda n: n.startswith(f"layers.{last}."))


BROKEN.update({
    "relu_half_at_zero": "relative error",
    "float32_readout_weight": "relative error",
    "counts_readout_twice": "relative error",
})

#: name -> the phrase its diagnosis must contain (and no other broken implementation's)
DIAGNOSED: dict[str, str] = {
    "relu_half_at_zero": "relu'(0) = 1/2 (the reference",
    "wrong_derivative_at_zero": "relu'(0) = 1 (the reference",
    "low_precision": "seems to compute in float32 somewhere; no single parameter tensor",
    "float32_readout_weight": "weight: rounding it alone to float32 reproduces the kernel",
    "counts_readout_twice": "confined to the readout layer",
    "scaled": "times 1.000001",
    "drops_biases": "without every bias",
}


def scaled_ten_percent(f, params, x1, x2):
    """The reference times 1.1: the scale error the quick suite's smooth cases must catch with
    probability 0.9 from their statistics alone (tests/harness/test_dispersion_detects_wrong_ntks.py)."""
    return 1.1 * jacobian_ntk(f, params, x1, x2)


scaled_ten_percent.vmappable = True
BROKEN["scaled_ten_percent"] = "times 1.1"
