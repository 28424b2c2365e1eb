"""NTK implementations and how one is chosen.

An implementation is a callable ``fn(f, params, x1, x2) -> Tensor``:

- ``params``: dict of named parameter tensors of ONE network;
- ``f(params, x)``: maps a batch ``x`` of shape [N, d] to [N, O] (as
  ``torch.func.functional_call`` does);
- the result is the empirical NTK ``Theta[a, b] = sum_p df(x1_a)/dp * df(x2_b)/dp``
  contracted over every parameter in ``params``: shape [N1, N2] when O = 1 and
  [N1, N2, O, O] otherwise (``Theta[a, b, i, j] = <df_i(x1_a)/dp, df_j(x2_b)/dp>``).

An implementation may set the attribute ``vmappable = True`` to say that it composes
with ``torch.func.vmap`` over stacked parameters; the runner then batches many networks
in one call, otherwise it calls it once per network.
"""
from harness.ntk.registry import BUILTINS, NTKImplementation, get_implementation, implementation_names

__all__ = ["BUILTINS", "NTKImplementation", "get_implementation", "implementation_names"]
