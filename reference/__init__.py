"""Reference theory for the NTK of randomly initialized fully connected networks.

Pure numpy/scipy; never imports torch or harness.  Modules, one job each:

* :mod:`reference.phase`           mean-field phases, q*, chi_1, edge of chaos, lambda = L/n
* :mod:`reference.infinite_width`  Jacot et al. infinite-width NTK (ReLU, arc-cosine recursion)
* :mod:`reference.exact`           exact finite-width law of Theta(x, x): moments and sampler
* :mod:`reference.joint`           exact joint law of the NTK matrix on k inputs (any activation,
                                   biases, widths) by Gaussian conditioning; Monte Carlo moments
* :mod:`reference.asymptotic`      n, L -> inf with L/n -> lambda: limiting dispersion per phase
* :mod:`reference.acceptance`      calibrated acceptance intervals and goodness of fit
* :mod:`reference.errors`          NotApplicable
"""

from .errors import NotApplicable
from .phase import (PHASES, chi_1, depth_to_width, edge_of_chaos_sigma_w2, phase_of,
                    variance_fixed_point)
from .infinite_width import infinite_width_ntk
from .exact import ExactLaw
from .joint import EntryLaw, JointLaw, MomentSummary, moment_summary, summarize_moments
from .asymptotic import asymptotic_dispersion
from .acceptance import STATISTICS, acceptance_intervals, estimate, goodness_of_fit

__all__ = [
    "NotApplicable", "PHASES", "chi_1", "depth_to_width", "edge_of_chaos_sigma_w2", "phase_of",
    "variance_fixed_point", "infinite_width_ntk", "ExactLaw", "asymptotic_dispersion",
    "STATISTICS", "acceptance_intervals", "estimate", "goodness_of_fit",
    "JointLaw", "EntryLaw", "MomentSummary", "moment_summary", "summarize_moments",
]
