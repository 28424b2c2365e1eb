"""Reference theory for the NTK of randomly initialized fully connected networks.

Pure numpy/scipy; never imports torch or harness.  Modules, one job each:

* :mod:`reference.phase`           mean-field phases, q*, chi_1, edge of chaos, lambda = L/n
* :mod:`reference.infinite_width`  Jacot et al. infinite-width NTK (ReLU, arc-cosine recursion)
* :mod:`reference.exact`           exact finite-width law of Theta(x, x): moments and sampler
* :mod:`reference.joint`           exact joint law of the NTK matrix on k inputs (any activation,
                                   biases, widths) by Gaussian conditioning; Monte Carlo moments
* :mod:`reference.asymptotic`      n, L -> inf with L/n -> lambda: limiting dispersion per phase
* :mod:`reference.acceptance`      calibrated acceptance intervals (per check) and goodness of fit
* :mod:`reference.power`           the power of those checks against a scale error Theta -> c Theta
* :mod:`reference.two_sample`      two-sample tests of measured entries against draws of the joint law
* :mod:`reference.errors`          NotApplicable
"""

from .errors import NotApplicable
from .phase import (PHASES, chi_1, depth_to_width, edge_of_chaos_sigma_w2, phase_of,
                    variance_fixed_point)
from .infinite_width import infinite_width_ntk
from .exact import ExactLaw
from .joint import EntryLaw, JointLaw, MomentSummary, moment_summary, summarize_moments
from .asymptotic import asymptotic_dispersion
from .acceptance import (CALIBRATION_VERSION, DEFAULT_DELTA, SCALE_FREE_STATISTICS, STATISTICS, AcceptanceDecisions,
                         acceptance_decisions, acceptance_intervals,
                         calibration_layer_draws, check_law, estimate, goodness_of_fit,
                         goodness_of_fit_critical_distance, map_replicates, reference_error_bound, reference_sample,
                         replicate_count, replicate_estimates)
from .power import (DetectableScale, PowerEstimate, ScaleAcceptance, case_minimum_detectable_scale,
                    minimum_detectable_scale, normal_detectable_scale, power_at_scale, scale_acceptance)
from .two_sample import ks_entries, permutation_test, permutation_tests

__all__ = [
    "NotApplicable", "PHASES", "chi_1", "depth_to_width", "edge_of_chaos_sigma_w2", "phase_of",
    "variance_fixed_point", "infinite_width_ntk", "ExactLaw", "asymptotic_dispersion",
    "STATISTICS", "AcceptanceDecisions", "acceptance_decisions", "acceptance_intervals", "estimate", "goodness_of_fit",
    "JointLaw", "EntryLaw", "MomentSummary", "moment_summary", "summarize_moments",
    "CALIBRATION_VERSION", "DEFAULT_DELTA", "SCALE_FREE_STATISTICS", "calibration_layer_draws", "check_law",
    "goodness_of_fit_critical_distance", "map_replicates", "reference_error_bound", "reference_sample",
    "replicate_count", "replicate_estimates", "DetectableScale", "PowerEstimate", "ScaleAcceptance", "case_minimum_detectable_scale",
    "minimum_detectable_scale", "normal_detectable_scale", "power_at_scale", "scale_acceptance", "ks_entries", "permutation_test", "permutation_tests",
]
