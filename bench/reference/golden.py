"""Runs the Python reference models on weights and inputs written by the C++ golden test.

usage: golden.py WEIGHTS.safetensors INPUTS.safetensors OUTPUTS.safetensors

WEIGHTS holds the C++ model's named parameters and metadata "model" (autoencoder|unet), "options"
(the options struct as JSON) and, for the UNet, "in_channels". INPUTS holds
  autoencoder: "x" [B, C, H, W] float32, "noise" latent-shaped float32
  unet:        "x" [B, C, h, w] float32, "t" [B] int64, "labels" [B] int64 (optional)
OUTPUTS receives, in float32,
  autoencoder: "mean", "logvar", "reconstruction" (decode(mean)), "sample_reconstruction"
               (decode(mean + std * noise)), "loss" (per-sample nll + beta * kl)
  unet:        "output" (the model prediction), and "output_uncond" (labels = null) when labeled.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402
import umbra_models  # noqa: E402


def load_state(model, weights):
    state = {k: torch.from_numpy(v) for k, v in weights.items()}
    expected = set(model.state_dict().keys())
    missing, extra = expected - set(state), set(state) - expected
    if missing or extra:
        raise SystemExit(f"parameter names differ: missing {sorted(missing)}, extra {sorted(extra)}")
    for name, value in model.state_dict().items():
        if tuple(value.shape) != tuple(state[name].shape):
            raise SystemExit(f"{name}: shape {tuple(state[name].shape)} != {tuple(value.shape)}")
    model.load_state_dict(state)
    model.eval()


def main(argv):
    if len(argv) != 4:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    weights, meta = safetensors_np.load(argv[1])
    inputs, _ = safetensors_np.load(argv[2])
    options = json.loads(meta["options"])
    out = {}
    with torch.no_grad():
        if meta["model"] == "autoencoder":
            model = umbra_models.Autoencoder(options)
            load_state(model, weights)
            x = torch.from_numpy(inputs["x"])
            noise = torch.from_numpy(inputs["noise"])
            mean, logvar, rec, _ = model(x)
            out["mean"], out["logvar"], out["reconstruction"] = mean, logvar, rec
            _, _, sample_rec, loss = model(x, noise)
            out["sample_reconstruction"], out["loss"] = sample_rec, loss
        elif meta["model"] == "unet":
            model = umbra_models.UNet(options, int(meta["in_channels"]))
            load_state(model, weights)
            x, t = torch.from_numpy(inputs["x"]), torch.from_numpy(inputs["t"])
            labels = torch.from_numpy(inputs["labels"]) if "labels" in inputs else None
            out["output"] = model(x, t, labels)
            if labels is not None:
                out["output_uncond"] = model(x, t, None)
        else:
            raise SystemExit(f"unknown model kind {meta['model']}")
    safetensors_np.save(argv[3], {k: v.float().numpy().astype(np.float32) for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv)
