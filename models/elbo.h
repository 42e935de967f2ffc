// Pixel convention and likelihood evaluation of the autoencoder (DESIGN.md §6, issue 3).
//
// The pixel convention is core/pixels.h's: v = (x + u)/128 − 1, u ~ U[0, 1) when dequantised and
// u = ½ for training inputs, reconstructions and samples.
// Change of variables: the density of w = x + u ∈ [0, 256)^D is p_w(w) = p_v(v)·128^(−D), so
//   −log p_w = −log p_v + D ln 128. The discrete model P(x) = ∫ p_w(x + u) du satisfies
//   log P(x) ≥ E_u[log p_w(x + u)] ≥ E_u[ELBO_v(v)] − D ln 128 (Jensen, then the VAE bound), hence
//     nats/image  = −ELBO_v + D ln 128         (an upper bound on −log P(x), in nats)
//     bits/dim    = nats/image / (D ln 2) = −ELBO_v / (D ln 2) + 7
//   with D = C·H·W of the image_size image (padding is not data) and ELBO_v in nats with β = 1:
//   ELBO_v = E_q[log p(v|z)] − KL(q(z|v) || N(0, I)). These numbers are comparable to published
//   bits/dim of dequantised 8-bit images.
//
// All evaluation functions below run under NoGradGuard and leave the module's train/eval mode
// alone (call model->eval() first: dropout changes the bound). Randomness (u, z) comes from a
// caller-owned CPU generator, so results are reproducible from its seed.
#pragma once

#include <torch/torch.h>

#include "core/pixels.h"
#include "models/autoencoder.h"

namespace umbra {

// −ELBO_v per sample in nats (model space, β = 1, KL in closed form, E_q[log p(v|z)] averaged
// over `num_samples` reparameterised draws). v [B, C, image_size, image_size]. [B] float64.
torch::Tensor negative_elbo_nats(AutoencoderImpl& model, const torch::Tensor& v,
                                 int64_t num_samples, at::Generator& gen);

// Importance-weighted estimate of log p_v(v) per sample in nats (Burda et al. 2016, IWAE):
// log (1/K) Σ_k p(v|z_k) p(z_k) / q(z_k|v), z_k ~ q(z|v). Its expectation increases with K
// towards log p_v(v), and for K = 1 equals ELBO_v. Computed in chunks of `chunk` draws. [B] f64.
torch::Tensor iwae_log_likelihood(AutoencoderImpl& model, const torch::Tensor& v,
                                  int64_t num_samples, at::Generator& gen, int64_t chunk = 64);

struct DequantizedElbo {
  torch::Tensor nats_per_image;  // [B] float64, −ELBO on the 0..255 scale (see above)
  torch::Tensor bits_per_dim;    // [B] float64
};
// Dequantises uint8 pixels once with `gen`, then −ELBO with `num_samples` latent draws.
DequantizedElbo negative_elbo_dequantized(AutoencoderImpl& model, const torch::Tensor& pixels,
                                          int64_t num_samples, at::Generator& gen);

// −ELBO_v (nats, model space) of a D-dimensional image -> the two reported units.
double model_nats_to_image_nats(double negative_elbo_v, int64_t dims);
double model_nats_to_bits_per_dim(double negative_elbo_v, int64_t dims);

}  // namespace umbra
