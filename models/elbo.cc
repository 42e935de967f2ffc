#include "models/elbo.h"

#include <cmath>

#include "core/check.h"

namespace umbra {

namespace {

const double kLogHalfBins = std::log(128.0);  // v = w/128 − 1

torch::Tensor latent_noise(const torch::Tensor& like, at::Generator& gen) {
  return torch::randn(like.sizes(), gen, torch::kFloat32).to(like.options());
}

int64_t image_dims(const torch::Tensor& v) { return v.size(1) * v.size(2) * v.size(3); }

}  // namespace

torch::Tensor negative_elbo_nats(AutoencoderImpl& model, const torch::Tensor& v,
                                 int64_t num_samples, at::Generator& gen) {
  UMBRA_CHECK(num_samples >= 1, "negative_elbo_nats: need at least one latent sample, got ",
              num_samples);
  torch::NoGradGuard no_grad;
  const Posterior q = model.encode(v);
  torch::Tensor nll = torch::zeros({v.size(0)}, v.options().dtype(torch::kFloat64));
  for (int64_t k = 0; k < num_samples; ++k) {
    const torch::Tensor z = q.sample(latent_noise(q.mean, gen));
    nll += model.nll(v, model.decode(z)).to(torch::kFloat64);
  }
  return nll / static_cast<double>(num_samples) + q.kl().to(torch::kFloat64);
}

torch::Tensor iwae_log_likelihood(AutoencoderImpl& model, const torch::Tensor& v,
                                  int64_t num_samples, at::Generator& gen, int64_t chunk) {
  UMBRA_CHECK(num_samples >= 1 && chunk >= 1,
              "iwae_log_likelihood: need num_samples >= 1 and chunk >= 1, got ", num_samples, ", ",
              chunk);
  torch::NoGradGuard no_grad;
  const Posterior q = model.encode(v);
  const int64_t b = v.size(0);
  const double log2pi = std::log(2.0 * M_PI);
  std::vector<torch::Tensor> log_weights;  // each [b, n]
  for (int64_t done = 0; done < num_samples; done += chunk) {
    const int64_t n = std::min(chunk, num_samples - done);
    // Draws for n importance samples of every image at once: rows k·b + i.
    const torch::Tensor mean = q.mean.repeat({n, 1, 1, 1});
    const Posterior qn{mean, q.logvar.repeat({n, 1, 1, 1})};
    const torch::Tensor z = qn.sample(latent_noise(mean, gen));
    const torch::Tensor log_pz = -0.5 * (z.pow(2) + log2pi).flatten(1).sum(1);
    const torch::Tensor log_px = -model.nll(v.repeat({n, 1, 1, 1}), model.decode(z));
    const torch::Tensor lw = (log_px + log_pz - qn.log_prob(z)).to(torch::kFloat64);
    log_weights.push_back(lw.view({n, b}).t());
  }
  const torch::Tensor all = torch::cat(log_weights, 1);
  return torch::logsumexp(all, 1) - std::log(static_cast<double>(num_samples));
}

DequantizedElbo negative_elbo_dequantized(AutoencoderImpl& model, const torch::Tensor& pixels,
                                          int64_t num_samples, at::Generator& gen) {
  const torch::Tensor v = dequantize_pixels(pixels, gen);
  const torch::Tensor nelbo = negative_elbo_nats(model, v, num_samples, gen);
  const double d = static_cast<double>(image_dims(v));
  DequantizedElbo out;
  out.nats_per_image = nelbo + d * kLogHalfBins;
  out.bits_per_dim = out.nats_per_image / (d * std::log(2.0));
  return out;
}

double model_nats_to_image_nats(double negative_elbo_v, int64_t dims) {
  return negative_elbo_v + static_cast<double>(dims) * kLogHalfBins;
}

double model_nats_to_bits_per_dim(double negative_elbo_v, int64_t dims) {
  return model_nats_to_image_nats(negative_elbo_v, dims) /
         (static_cast<double>(dims) * std::log(2.0));
}

}  // namespace umbra
