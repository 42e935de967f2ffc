"""Independent reference for audit/canary_bound: the one-run bound of Steinke, Nasr, Jagielski
(2023) evaluated with 80-digit decimal arithmetic and exact binomial coefficients.

usage: one_run_bound_reference.py tail R P V          -> P[Binomial(R, P) >= V]
       one_run_bound_reference.py bound M R V BETA DELTA -> eps lower bound
"""
import sys
from decimal import Decimal, getcontext
from math import comb

getcontext().prec = 80


def pmf(r, j, p):
    return comb(r, j) * p ** j * (1 - p) ** (r - j)


def p_of_eps(eps):
    e = Decimal(eps).exp()
    return e / (1 + e)


def p_value(m, r, v, eps, delta):
    p = p_of_eps(eps)
    tail = sum((pmf(r, j, p) for j in range(v, r + 1)), Decimal(0))
    if delta == 0:
        return tail
    alpha, mass = Decimal(0), Decimal(0)
    for i in range(1, v + 1):
        mass += pmf(r, v - i, p)
        alpha = max(alpha, mass / i)
    return min(Decimal(1), tail + alpha * Decimal(delta) * 2 * m)


def bound(m, r, v, beta, delta):
    beta = Decimal(beta)
    if p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < beta:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if p_value(m, r, v, mid, delta) < beta:
            lo = mid
        else:
            hi = mid
    return lo


if sys.argv[1] == "tail":
    r, p, v = int(sys.argv[2]), Decimal(sys.argv[3]), int(sys.argv[4])
    print("%.17g" % float(sum((pmf(r, j, p) for j in range(v, r + 1)), Decimal(0))))
else:
    m, r, v = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    print("%.17g" % bound(m, r, v, float(sys.argv[5]), float(sys.argv[6])))
