"""Per-sample Conv2d weight gradients on CPU, three ways, against the non-private weight gradient
of the same layer: the groundwork for the DP step's Conv2d kDirect method (issue 4; the trainer
today loops over samples, privacy/per_sample_grad.cc Conv2dGradient::direct_norms).

  loop     one convolution_backward per sample (what Conv2dGradient::direct_norms does)
  grouped  one grouped convolution_backward with groups = B: the samples side by side in the
           channel dimension, the K draws of a sample in the batch dimension
  shift    im2col by k*k shifted slices of the padded input, then one bmm
  full     the non-private weight gradient of the whole micro-batch (the scale)

usage: MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 \\
       /usr/bin/python3 bench/reference/conv_per_sample.py [--threads 1] [--reps 5]
(the glibc settings are those `umbra` sets for itself: without them every large buffer is a
fresh mmap and page-faults again, which swamps the comparison). Prints the fastest of --reps
runs of each method per layer shape, in milliseconds; all methods are checked against loop.
"""
import argparse
import time

import torch
import torch.nn.functional as F


def bwd(g, x, w, st, pad, groups):
    return torch.ops.aten.convolution_backward(g, x, w, None, [st, st], [pad, pad], [1, 1], False,
                                               [0, 0], groups, [False, True, False])[1]


def loop(x, g, w, st, pad, k_draws):
    b = x.shape[0] // k_draws
    return torch.stack([bwd(g[i * k_draws:(i + 1) * k_draws], x[i * k_draws:(i + 1) * k_draws], w,
                            st, pad, 1) for i in range(b)])


def grouped(x, g, w, st, pad, k_draws):
    n, c = x.shape[:2]
    o, b = g.shape[1], n // k_draws
    xi = x.view(b, k_draws, c, *x.shape[2:]).transpose(0, 1).reshape(k_draws, b * c, *x.shape[2:])
    gi = g.view(b, k_draws, o, *g.shape[2:]).transpose(0, 1).reshape(k_draws, b * o, *g.shape[2:])
    wg = w.expand(b, *w.shape).reshape(b * o, *w.shape[1:])
    return bwd(gi, xi, wg, st, pad, b).view(b, o, c, *w.shape[2:])


def shift(x, g, w, st, pad, k_draws):
    n, c = x.shape[:2]
    o, b, k = g.shape[1], n // k_draws, w.shape[2]
    ho, wo = g.shape[2], g.shape[3]
    xp = F.pad(x, (pad, pad, pad, pad))
    cols = torch.stack([xp[:, :, i:i + st * (ho - 1) + 1:st, j:j + st * (wo - 1) + 1:st]
                        for i in range(k) for j in range(k)], dim=2)
    cols = cols.reshape(b, k_draws, c * k * k, ho * wo).permute(0, 2, 1, 3).reshape(b, c * k * k, -1)
    gg = g.reshape(b, k_draws, o, ho * wo).permute(0, 2, 1, 3).reshape(b, o, -1)
    return torch.bmm(gg, cols.transpose(1, 2)).view(b, o, c, k, k)


def full(x, g, w, st, pad, k_draws):
    return bwd(g, x, w, st, pad, 1)


# (samples B, draws K, C_in, C_out, H = W, stride): the autoencoder's and the UNet's shapes.
SHAPES = [(64, 1, 1, 32, 32, 1), (64, 1, 32, 32, 32, 1), (64, 1, 32, 32, 32, 2),
          (64, 1, 32, 64, 16, 1), (64, 1, 64, 64, 16, 1), (64, 1, 64, 64, 16, 2),
          (64, 1, 64, 64, 8, 1), (64, 1, 128, 128, 8, 1), (64, 1, 128, 128, 4, 1),
          (64, 2, 64, 64, 16, 1), (64, 2, 32, 32, 32, 1), (256, 1, 64, 64, 8, 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    methods = [("loop", loop), ("grouped", grouped), ("shift", shift), ("full", full)]
    for (b, k_draws, c, o, h, st) in SHAPES:
        x = torch.randn(b * k_draws, c, h, h)
        w = torch.randn(o, c, 3, 3)
        ho = (h + 2 - 3) // st + 1
        g = torch.randn(b * k_draws, o, ho, ho)
        ref = loop(x, g, w, st, 1, k_draws)
        for name, f in methods[1:3]:
            got = f(x, g, w, st, 1, k_draws)
            assert torch.allclose(got, ref, atol=1e-2, rtol=1e-3), (name, (got - ref).abs().max())
        best = {}
        for _ in range(args.reps):
            for name, f in methods:
                t = time.perf_counter()
                f(x, g, w, st, 1, k_draws)
                best[name] = min(best.get(name, 1e9), time.perf_counter() - t)
        print(f"B {b:3d} K {k_draws} C {c:3d}->{o:3d} {h:2d}x{h:<2d} stride {st}: " +
              "  ".join(f"{n} {1e3 * v:7.1f}" for n, v in best.items()), flush=True)


if __name__ == "__main__":
    main()
