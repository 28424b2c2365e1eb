"""Adapters: NTK implementations of third-party libraries behind the harness's calling convention
``fn(f, params, x1, x2)``, and the tools they share.

Each adapter is an optional extra, imported only when named (``--ntk-implementation nngeometry``):
the names are listed in :data:`harness.ntk.registry.OPTIONAL`, apart from the built-ins that the
kinds run by default. docs/third-party.md says how to install each library and what it supports.

- :mod:`~harness.ntk.adapters.module`: the network as an ``nn.Module`` carrying given parameters
  (:func:`~harness.ntk.adapters.module.as_module`) and the ``takes_module`` decorator;
- :mod:`~harness.ntk.adapters.arrays`: the harness MLP as plain arrays for JAX / flax users;
- :mod:`~harness.ntk.adapters.layout`: the harness's output layout from the libraries' layouts;
- ``with_nngeometry``, ``with_backpack``, ``with_curvlinops``, ``with_neural_tangents``: the adapters.

Importing this package imports none of the libraries.
"""
from harness.ntk.adapters.arrays import MLPArrays, mlp_arrays
from harness.ntk.adapters.module import as_module, takes_module

__all__ = ["MLPArrays", "as_module", "mlp_arrays", "takes_module"]
