"""float32 errors of each built-in and of a TF32 contraction against float64, beside the reference's own.

    OMP_NUM_THREADS=1 python docs/measurements/scripts/precision_margins.py

For every float32 agreement case and every model case shipped (input counts up to 300), on
each network and call shape: the reference (jacobian) computed in float32 against float64
(its own float32 rounding error, e_ref), and each built-in and ``tests.ntk.broken:tf32_contraction``
in float32 against the float64 reference, as max|K - K_ref| / max|K_ref|, with the ratio to
e_ref. The float32 policy of harness/ntk/precision.py (8 e_ref, floor 1e-6) is read off it.
"""
import glob
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from harness.kinds import load_cases, KINDS
from harness.kinds.agreement.run import mlp_subject, model_subject
from harness.ntk.registry import get_implementation
from harness.ntk.diagnosis import relative_error
from harness.networks import unstack
from harness.ntk.jacobian import jacobian_ntk
rows = []
for path in sorted(glob.glob(str(ROOT / "cases" / "agreement" / "*.toml")) + [str(ROOT / "cases" / "models" / "models.toml")]):
    for case in load_cases(path):
        s = case.sections
        if s.agreement.dtype != "float32" and "models" not in path:
            continue
        if s.agreement.inputs > 300 or s.agreement.other_inputs > 300:
            continue
        subject = (model_subject(s.model, s.agreement, torch.device("cpu"), Path(path).parent) if s.model is not None
                   else mlp_subject(s.network, s.agreement, torch.device("cpu")))
        errs = {"reference float32": 0.0}
        impls = ["ntk-vector-products", "structured", "autograd-loop", "tests.ntk.broken:tf32_contraction"]
        for m in range(subject.networks):
            f = subject.functions[m]
            p64 = unstack(subject.stacked64, m)
            p32 = {k: v.float() for k, v in p64.items()}
            for shape in subject.shapes:
                if shape.split is not None or shape.name == "row":
                    continue
                xa, xb = shape.xa, (shape.xa if shape.same else shape.xb)
                ref = jacobian_ntk(f, p64, xa, xb)
                j32 = jacobian_ntk(f, p32, xa.float(), xa.float() if shape.same else xb.float())
                errs["reference float32"] = max(errs["reference float32"], relative_error(j32.double(), ref))
                for name in impls:
                    impl = get_implementation(name)
                    if impl.supports(f) is not None: continue
                    try:
                        r = impl(f, p32, xa.float(), xa.float() if shape.same else xb.float())
                    except Exception as e:
                        continue
                    errs[name] = max(errs.get(name, 0.0), relative_error(r.double(), ref))
        rows.append((case.id, errs))
for cid, e in rows:
    ref = e["reference float32"]
    print(f"{cid[:70]:70s} ref {ref:.2e} " + " ".join(f"{k.split(':')[-1][:10]} {v:.2e} ({v/ref:.1f}x)" for k, v in e.items() if k != "reference float32"))
