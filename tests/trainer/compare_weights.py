"""Compares the tensors of safetensors files against a reference file.

    compare_weights.py [--skip REGEX] TOLERANCE REFERENCE OTHER [OTHER ...]

For each OTHER and each tensor: relative error = max|a - b| / max|a| (a = reference; max over
the tensor). Prints the largest relative error per file with its tensor, and exits 1 when any
exceeds TOLERANCE or when the files do not hold the same tensors with the same shapes.
--skip REGEX: tensors whose name matches are left out of the verdict (their largest error is
still printed), for parameters whose exact gradient is zero (see mpi_equivalence_test.sh).
"""
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                                "reference"))
import safetensors_np  # noqa: E402


def compare(reference, other, skip=None):
    a_all, _ = safetensors_np.load(reference)
    b_all, _ = safetensors_np.load(other)
    if sorted(a_all) != sorted(b_all):
        missing = sorted(set(a_all) ^ set(b_all))
        raise SystemExit(f"{other}: tensor names differ from {reference}: {missing[:5]}")
    worst, worst_name, worst_abs = 0.0, "", 0.0
    skipped, skipped_name = 0.0, ""
    for name, a in a_all.items():
        b = b_all[name]
        if a.shape != b.shape:
            raise SystemExit(f"{other}: tensor '{name}' has shape {b.shape}, reference {a.shape}")
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        diff = float(np.max(np.abs(a64 - b64))) if a.size else 0.0
        scale = float(np.max(np.abs(a64))) if a.size else 0.0
        rel = diff / scale if scale > 0 else diff
        if skip is not None and skip.search(name):
            if rel >= skipped:
                skipped, skipped_name = rel, name
            continue
        if rel > worst:
            worst, worst_name, worst_abs = rel, name, diff
    return worst, worst_name, worst_abs, len(a_all), skipped, skipped_name


def main():
    args = sys.argv[1:]
    skip = None
    if args[:1] == ["--skip"]:
        skip = re.compile(args[1])
        args = args[2:]
    if len(args) < 3:
        raise SystemExit(__doc__)
    tol, reference, others = float(args[0]), args[1], args[2:]
    ok = True
    for other in others:
        rel, name, diff, n, skipped, skipped_name = compare(reference, other, skip)
        verdict = "ok" if rel <= tol else "TOO LARGE"
        left_out = (f"; left out /{skip.pattern}/: max {skipped:.3e} ('{skipped_name}')"
                    if skip is not None and skipped_name else "")
        print(f"{other}: max relative error {rel:.3e} (tensor '{name}', max abs diff {diff:.3e}, "
              f"{n} tensors{left_out}) vs {reference}: {verdict} (tolerance {tol:g})")
        ok = ok and rel <= tol
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
