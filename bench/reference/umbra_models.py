"""Python PyTorch reference of Umbra's autoencoder and diffusion UNet (models/*.h).

Same architecture, same parameter names and the same op sequence as the C++ models, so a
state dict exchanged through safetensors gives the same outputs (tests/models/golden_test.cc)
and training steps can be timed side by side (bench/). Options are the C++ options structs as
dicts with the same keys (models/autoencoder_options.h, models/prior_options.h).
Works with Debian's python3-torch 1.13 (no scaled_dot_product_attention).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

AE_NORM_EPS = 1e-6    # SD AutoencoderKL
UNET_NORM_EPS = 1e-5  # LDM / diffusers UNet
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
LOG_2PI = math.log(2.0 * math.pi)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb_channels=0, groups=32, eps=1e-6, dropout=0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, cout) if temb_channels > 0 else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class AttentionBlock(nn.Module):
    def __init__(self, channels, num_heads=1, groups=32, eps=1e-6):
        super().__init__()
        assert channels % num_heads == 0
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x):
        b, c, h, w = x.shape
        heads, n = self.num_heads, h * w
        d = c // heads
        tokens = self.norm(x).reshape(b, c, n).transpose(1, 2)

        def split(t):
            return t.reshape(b, n, heads, d).transpose(1, 2)

        q, k, v = split(self.to_q(tokens)), split(self.to_k(tokens)), split(self.to_v(tokens))
        scale = 1.0 / math.sqrt(d)
        weights = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, -1)
        attended = torch.matmul(weights, v).transpose(1, 2).reshape(b, n, c)
        return x + self.to_out(attended).transpose(1, 2).reshape(b, c, h, w)


class Downsample(nn.Module):
    def __init__(self, channels, asymmetric_padding):
        super().__init__()
        self.asymmetric_padding = asymmetric_padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2,
                              padding=0 if asymmetric_padding else 1)

    def forward(self, x):
        if self.asymmetric_padding:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, size=None):
        if size is None:
            size = (2 * x.shape[2], 2 * x.shape[3])
        return self.conv(F.interpolate(x, size=tuple(size), mode="nearest"))


class MidBlock(nn.Module):
    def __init__(self, channels, temb_channels, groups, eps, dropout, num_heads):
        super().__init__()
        self.resnet_1 = ResBlock(channels, channels, temb_channels, groups, eps, dropout)
        self.attention = AttentionBlock(channels, num_heads, groups, eps)
        self.resnet_2 = ResBlock(channels, channels, temb_channels, groups, eps, dropout)

    def forward(self, x, temb=None):
        return self.resnet_2(self.attention(self.resnet_1(x, temb)), temb)


class LevelBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnets = nn.ModuleList()
        self.attentions = nn.ModuleList()
        self.downsample = None
        self.upsample = None


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device)
                      * (-math.log(10000.0) / half))
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], 1)


class Encoder(nn.Module):
    def __init__(self, o):
        super().__init__()
        g, mult = o["norm_num_groups"], o["channel_mult"]
        self.conv_in = nn.Conv2d(o["in_channels"], o["channels"], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        ch = o["channels"]
        for i, m in enumerate(mult):
            level, out = LevelBlock(), o["channels"] * m
            for _ in range(o["num_res_blocks"]):
                level.resnets.append(ResBlock(ch, out, 0, g, AE_NORM_EPS, o["dropout"]))
                ch = out
            if i + 1 < len(mult):
                level.downsample = Downsample(ch, True)
            self.down_blocks.append(level)
        self.mid_block = MidBlock(ch, 0, g, AE_NORM_EPS, o["dropout"], o["num_heads"])
        self.norm_out = nn.GroupNorm(g, ch, eps=AE_NORM_EPS)
        self.conv_out = nn.Conv2d(ch, 2 * o["z_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.down_blocks:
            for resnet in level.resnets:
                h = resnet(h)
            if level.downsample is not None:
                h = level.downsample(h)
        h = self.mid_block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, o):
        super().__init__()
        g, mult = o["norm_num_groups"], o["channel_mult"]
        ch = o["channels"] * mult[-1]
        self.conv_in = nn.Conv2d(o["z_channels"], ch, 3, padding=1)
        self.mid_block = MidBlock(ch, 0, g, AE_NORM_EPS, o["dropout"], o["num_heads"])
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(len(mult))):
            level, out = LevelBlock(), o["channels"] * mult[i]
            for _ in range(o["num_res_blocks"] + 1):
                level.resnets.append(ResBlock(ch, out, 0, g, AE_NORM_EPS, o["dropout"]))
                ch = out
            if i > 0:
                level.upsample = Upsample(ch)
            self.up_blocks.append(level)
        self.norm_out = nn.GroupNorm(g, ch, eps=AE_NORM_EPS)
        self.conv_out = nn.Conv2d(ch, o["in_channels"], 3, padding=1)

    def forward(self, z):
        h = self.mid_block(self.conv_in(z))
        for level in self.up_blocks:
            for resnet in level.resnets:
                h = resnet(h)
            if level.upsample is not None:
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class DecoderLogvar(nn.Module):
    def __init__(self, init):
        super().__init__()
        self.value = nn.Parameter(torch.full((1,), float(init)))


class Autoencoder(nn.Module):
    """C++: umbra::Autoencoder (models/autoencoder.h)."""

    def __init__(self, o):
        super().__init__()
        self.o = dict(o)
        z = o["z_channels"]
        self.encoder = Encoder(o)
        self.quant_conv = nn.Conv2d(2 * z, 2 * z, 1)
        self.post_quant_conv = nn.Conv2d(z, z, 1)
        self.decoder = Decoder(o)
        self.decoder_logvar = DecoderLogvar(o.get("logvar_init", 0.0))

    def _pad(self):
        before = (self.o["sample_size"] - self.o["image_size"]) // 2
        after = self.o["sample_size"] - self.o["image_size"] - before
        return before, after

    def encode(self, x):
        before, after = self._pad()
        if before + after > 0:
            x = F.pad(x, (before, after, before, after), value=-1.0)
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, 1)
        return mean, torch.clamp(logvar, LOGVAR_MIN, LOGVAR_MAX)

    def decode(self, z):
        out = self.decoder(self.post_quant_conv(z))
        before, _ = self._pad()
        s = self.o["image_size"]
        return out[:, :, before:before + s, before:before + s]

    def nll(self, x, reconstruction):
        d = x.shape[1] * x.shape[2] * x.shape[3]
        s = self.decoder_logvar.value
        sq = (x - reconstruction).pow(2).flatten(1).sum(1)
        return 0.5 * (sq * torch.exp(-s) + d * (s + LOG_2PI))

    @staticmethod
    def kl(mean, logvar):
        return 0.5 * (mean.pow(2) + torch.exp(logvar) - logvar - 1.0).flatten(1).sum(1)

    def forward(self, x, noise=None):
        """Returns (mean, logvar, reconstruction, per-sample loss = nll + beta * kl)."""
        mean, logvar = self.encode(x)
        z = mean if noise is None else mean + torch.exp(0.5 * logvar) * noise
        rec = self.decode(z)
        loss = self.nll(x, rec) + self.o["beta"] * self.kl(mean, logvar)
        return mean, logvar, rec, loss


class TimestepEmbedding(nn.Module):
    def __init__(self, dim, out_dim):
        super().__init__()
        self.linear_1 = nn.Linear(dim, out_dim)
        self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, features):
        return self.linear_2(F.silu(self.linear_1(features)))


class UNet(nn.Module):
    """C++: umbra::UNet (models/unet.h)."""

    def __init__(self, o, in_channels):
        super().__init__()
        self.o = dict(o)
        g, mult, c = o["norm_num_groups"], o["channel_mult"], o["channels"]
        temb = 4 * c

        def resnet(cin, cout):
            return ResBlock(cin, cout, temb, g, UNET_NORM_EPS, o["dropout"])

        def attends(level):
            return (1 << level) in o["attention_resolutions"]

        self.conv_in = nn.Conv2d(in_channels, c, 3, padding=1)
        self.time_embedding = TimestepEmbedding(c, temb)
        self.class_embedding = (nn.Embedding(o["num_classes"] + 1, temb)
                                if o["num_classes"] > 0 else None)
        skips, ch = [c], c
        self.down_blocks = nn.ModuleList()
        for i, m in enumerate(mult):
            level, out = LevelBlock(), c * m
            for _ in range(o["num_res_blocks"]):
                level.resnets.append(resnet(ch, out))
                ch = out
                if attends(i):
                    level.attentions.append(AttentionBlock(ch, o["num_heads"], g, UNET_NORM_EPS))
                skips.append(ch)
            if i + 1 < len(mult):
                level.downsample = Downsample(ch, False)
                skips.append(ch)
            self.down_blocks.append(level)
        self.mid_block = MidBlock(ch, temb, g, UNET_NORM_EPS, o["dropout"], o["num_heads"])
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(len(mult))):
            level, out = LevelBlock(), c * mult[i]
            for _ in range(o["num_res_blocks"] + 1):
                level.resnets.append(resnet(ch + skips.pop(), out))
                ch = out
                if attends(i):
                    level.attentions.append(AttentionBlock(ch, o["num_heads"], g, UNET_NORM_EPS))
            if i > 0:
                level.upsample = Upsample(ch)
            self.up_blocks.append(level)
        self.norm_out = nn.GroupNorm(g, ch, eps=UNET_NORM_EPS)
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)

    def forward(self, x, t, labels=None):
        temb = self.time_embedding(timestep_embedding(t, self.o["channels"]).to(x.dtype))
        if self.class_embedding is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.o["num_classes"], dtype=torch.long,
                                    device=x.device)
            temb = temb + self.class_embedding(labels)
        h = self.conv_in(x)
        skips = [h]
        for level in self.down_blocks:
            for j, resnet in enumerate(level.resnets):
                h = resnet(h, temb)
                if len(level.attentions) > 0:
                    h = level.attentions[j](h)
                skips.append(h)
            if level.downsample is not None:
                h = level.downsample(h)
                skips.append(h)
        h = self.mid_block(h, temb)
        for level in self.up_blocks:
            for j, resnet in enumerate(level.resnets):
                h = resnet(torch.cat([h, skips.pop()], 1), temb)
                if len(level.attentions) > 0:
                    h = level.attentions[j](h)
            if level.upsample is not None:
                h = level.upsample(h, skips[-1].shape[2:])
        return self.conv_out(F.silu(self.norm_out(h)))


class NoiseSchedule:
    """C++: umbra::NoiseSchedule (models/noise_schedule.h), float64 tables."""

    def __init__(self, kind="linear", num_timesteps=1000, beta_start=1e-4, beta_end=0.02):
        if kind == "linear":
            betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
        else:
            def f(tau):
                return math.cos((tau + 0.008) / 1.008 * math.pi / 2) ** 2
            n = num_timesteps
            betas = torch.tensor([min(1 - f((t + 1) / n) / f(t / n), 0.999) for t in range(n)],
                                 dtype=torch.float64)
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)

    def _gather(self, table, t, like):
        return table[t.cpu()].to(like.dtype).to(like.device).view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0, noise, t):
        ab = self.alphas_cumprod
        return self._gather(ab.sqrt(), t, x0) * x0 + self._gather((1 - ab).sqrt(), t, x0) * noise

    def target(self, prediction_type, x0, noise, t):
        if prediction_type == "epsilon":
            return noise
        ab = self.alphas_cumprod
        return self._gather(ab.sqrt(), t, x0) * noise - self._gather((1 - ab).sqrt(), t, x0) * x0


def diffusion_loss(model, schedule, prediction_type, x0, labels, t, noise):
    """Per-sample MSE [B] (C++: umbra::diffusion_loss)."""
    x_t = schedule.q_sample(x0, noise, t)
    out = model(x_t, t, labels)
    return (out - schedule.target(prediction_type, x0, noise, t)).pow(2).flatten(1).mean(1)
