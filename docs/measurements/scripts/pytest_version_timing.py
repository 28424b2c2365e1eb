"""`pytest --version` with and without the ntk_harness plugin, in an unrelated empty folder: best of 7 each, interleaved.

    python docs/measurements/scripts/pytest_version_timing.py
"""
import subprocess, sys, tempfile, time
with tempfile.TemporaryDirectory() as folder:
    times = {"with": [], "without (-p no:ntk_harness)": []}
    for _ in range(7):
        for label, extra in (("with", []), ("without (-p no:ntk_harness)", ["-p", "no:ntk_harness"])):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pytest", "--version", *extra], cwd=folder, capture_output=True, check=True)
            times[label].append(time.perf_counter() - t)
    for label, values in times.items():
        print(f"pytest --version {label}: best {min(values):.3f} s, median {sorted(values)[3]:.3f} s")
    print(f"difference of the bests: {min(times['with']) - min(times['without (-p no:ntk_harness)']):+.3f} s")
