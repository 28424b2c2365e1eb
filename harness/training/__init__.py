"""Training runs for the training cases: does the NTK stay put during training?

- :mod:`harness.training.data`       datasets (scikit-learn's digits, teacher-student), probe set;
- :mod:`harness.training.loop`       stacked training of S seeded networks, divergence detection;
- :mod:`harness.training.probe`      the probe-set NTK, chunked to a memory budget;
- :mod:`harness.training.metrics`    relative change, alignment, eigenvalues, block ratio, fits;
- :mod:`harness.training.experiment` one architecture trained over networks, measured per checkpoint.

The kind that turns these into verdicts is :mod:`harness.kinds.training`.
"""
