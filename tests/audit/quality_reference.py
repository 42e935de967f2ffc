"""Independent references for audit/quality (numpy only).

usage: quality_reference.py frechet A.f64 B.f64 D
         Frechet distance of Gaussians fitted to the rows of A and B (float64 [*, D] dumps), with
         tr sqrt(S_a S_b) from the eigenvalues of the non-symmetric product S_a S_b (a different
         route from the C++ symmetric A^(1/2) S_b A^(1/2)).
       quality_reference.py prd REAL.f64 GEN.f64 D K
         Precision and recall of Kynkaanniemi et al. 2019 by brute force: full distance matrices,
         radius = k-th nearest neighbour with the point itself at index 0 (np.partition at k).
"""
import sys

import numpy as np


def load(path, d):
    return np.fromfile(path, dtype="<f8").reshape(-1, d)


def frechet(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(s_a @ s_b)
    tr_sqrt = np.sqrt(np.clip(eig.real, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_sqrt)


def distances(x, y):
    return np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))


def radii(x, k):
    return np.partition(distances(x, x), k, axis=1)[:, k]


def inside(probe, centres, r):
    return float((distances(probe, centres) <= r[None, :]).any(1).mean())


if sys.argv[1] == "frechet":
    d = int(sys.argv[4])
    print("%.17g" % frechet(load(sys.argv[2], d), load(sys.argv[3], d)))
else:
    d, k = int(sys.argv[4]), int(sys.argv[5])
    real, gen = load(sys.argv[2], d), load(sys.argv[3], d)
    print("%.17g %.17g" % (inside(gen, real, radii(real, k)), inside(real, gen, radii(gen, k))))
