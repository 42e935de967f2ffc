"""One training step of the Python PyTorch reference models, timed per phase: the eager-PyTorch
side of the C++ vs Python comparison (issue 3 benchmark; driver: bench/train_step_bench.sh, C++
side: bench/train_step_bench.cc).

usage: train_step.py --options OPTIONS.json [--stage ae|unet] [--batch 64] [--threads 1]
                     [--steps 5] [--warmup 1] [--rep 0] [--lockstep] [--profile TRACE.json]

OPTIONS.json is written by `train_step_bench --options-json` from the same config, so both sides
build the same models (bench/reference/umbra_models.py has the C++ architecture and parameter
names). The step is what a PyTorch user would write for the trainer's non-private step:
  zero_grad -> per-sample loss (draws included) -> mean -> backward -> clip_grad_norm_(grad_clip)
  -> torch.optim.AdamW(lr, betas, eps, weight_decay of the config) -> EMA update,
with the same losses as models/: autoencoder = Gaussian NLL with the learned scalar decoder
log-variance + beta * closed-form KL, reparameterised z; prior = epsilon (or v) MSE at a uniform
random t with classifier-free label dropout. The batch is fixed random data (images in [-1, 1]
or N(0, 1) latents), as on the C++ side. Prints one JSON line per timed step, milliseconds:
  {"side":"python","stage":"ae","batch":64,"threads":1,"rep":0,"total_ms":..,"phases":{..}}
--profile: the last step runs under torch.autograd.profiler, written as a Chrome trace.
--lockstep: before each step read one line from stdin, print that step's line (warm-up
included, "rep" = step index), stop at end of input (--steps/--warmup ignored).
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import umbra_models  # noqa: E402


def autoencoder_loss(o, batch):
    """(model, per-sample loss closure) for the autoencoder stage."""
    model = umbra_models.Autoencoder(o)
    size = o["image_size"]
    x = torch.rand(batch, o["in_channels"], size, size) * 2 - 1
    latent = o["sample_size"] // (1 << (len(o["channel_mult"]) - 1))

    def loss():
        noise = torch.randn(batch, o["z_channels"], latent, latent)
        return model(x, noise)[3]

    return model, loss


def prior_loss(o, ae, batch):
    """(model, per-sample loss closure) for the latent diffusion prior."""
    latent = ae["sample_size"] // (1 << (len(ae["channel_mult"]) - 1))
    model = umbra_models.UNet(o, ae["z_channels"])
    schedule = umbra_models.NoiseSchedule(o["beta_schedule"], o["num_train_timesteps"],
                                          o["beta_start"], o["beta_end"])
    x0 = torch.randn(batch, ae["z_channels"], latent, latent)
    classes = o["num_classes"]
    labels = torch.randint(0, max(1, classes), (batch,))

    def loss():
        t = torch.randint(0, o["num_train_timesteps"], (batch,))
        noise = torch.randn_like(x0)
        given = None
        if classes > 0:
            dropped = torch.rand(batch, dtype=torch.float64) < o["class_dropout_prob"]
            given = torch.where(dropped, torch.full_like(labels, classes), labels)
        return umbra_models.diffusion_loss(model, schedule, o["prediction_type"], x0, given, t,
                                           noise)

    return model, loss


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--options", required=True)
    p.add_argument("--stage", choices=["ae", "unet"], default="ae")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rep", type=int, default=0)
    p.add_argument("--lockstep", action="store_true")
    p.add_argument("--profile")
    a = p.parse_args(argv)
    try:
        with open(a.options) as f:
            options = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"train_step.py: cannot read --options {a.options}: {e}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)

    ae = options["autoencoder"]
    if a.stage == "ae":
        train = ae
        model, loss_fn = autoencoder_loss(ae, a.batch)
    else:
        train = options["prior"]
        model, loss_fn = prior_loss(train, ae, a.batch)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    o = train["optimizer"]
    if o["name"] != "adamw":
        sys.exit(f"train_step.py: optimizer.name = {o['name']!r}; only adamw is wired up")
    opt = torch.optim.AdamW(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                            weight_decay=o["weight_decay"])
    ema = [q.detach().clone() for q in params]
    decay = train["ema_decay"]

    clock = time.perf_counter
    step = -1
    while True:
        step += 1
        if a.lockstep:
            if not sys.stdin.readline():
                break
        elif step >= a.warmup + a.steps:
            break
        profiler = None
        if a.profile and not a.lockstep and step + 1 == a.warmup + a.steps:
            profiler = torch.autograd.profiler.profile()
            profiler.__enter__()
        start = clock()
        opt.zero_grad()
        t = clock()
        loss = loss_fn().mean()
        forward = clock() - t
        t = clock()
        loss.backward()
        value = loss.item()
        backward = clock() - t
        t = clock()
        if train["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(params, train["grad_clip"])
        clip = clock() - t
        t = clock()
        opt.step()
        optimizer = clock() - t
        t = clock()
        with torch.no_grad():
            for e, q in zip(ema, params):
                e.mul_(decay).add_(q.detach(), alpha=1.0 - decay)
        ema_s = clock() - t
        total = clock() - start
        if profiler is not None:
            profiler.__exit__(None, None, None)
            profiler.export_chrome_trace(a.profile)
        if not math.isfinite(value):
            sys.exit(f"train_step.py: loss became {value} at step {step}")
        if not a.lockstep and step < a.warmup:
            continue
        print(json.dumps({
            "side": "python", "stage": a.stage, "batch": a.batch, "threads": a.threads,
            "rep": step if a.lockstep else a.rep, "total_ms": 1e3 * total, "loss": value,
            "phases": {"forward": 1e3 * forward, "backward": 1e3 * backward, "sync": 0.0,
                       "clip": 1e3 * clip, "optimizer": 1e3 * optimizer, "ema": 1e3 * ema_s}}),
            flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
