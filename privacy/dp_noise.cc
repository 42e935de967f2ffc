#include "privacy/dp_noise.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "core/rng.h"

namespace umbra {

namespace {

// Counter words that keep the noise seeds apart from every other Philox use of the run seed.
constexpr uint32_t kNoiseTag = 0x4e4f4953;  // "NOIS"

// 53-bit uniform in (0, 1] (never 0, so log() is finite).
double open_uniform(uint64_t bits) { return static_cast<double>((bits >> 11) + 1) * 0x1.0p-53; }

// 53-bit uniform in [0, 1).
double uniform(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

}  // namespace

void os_random_bytes(void* out, size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {
    const ssize_t got = getrandom(p, size, 0);
    if (got < 0) {
      UMBRA_CHECK(errno == EINTR, "secure_mode: getrandom() failed: ", std::strerror(errno));
      continue;
    }
    p += got;
    size -= static_cast<size_t>(got);
  }
}

GaussianNoise::GaussianNoise(double noise_multiplier, double sensitivity, bool secure_mode,
                             uint64_t seed)
    : std_(noise_multiplier * sensitivity), secure_mode_(secure_mode), seed_(seed) {
  UMBRA_CHECK(noise_multiplier >= 0.0 && std::isfinite(noise_multiplier),
              "privacy.noise_multiplier: expected a finite value >= 0, got ", noise_multiplier);
  UMBRA_CHECK(sensitivity >= 0.0 && std::isfinite(sensitivity),
              "privacy.max_grad_norm: expected a finite clipping norm >= 0 for the noise scale, "
              "got ",
              sensitivity);
}

torch::Tensor GaussianNoise::seeded_noise(int64_t numel, at::Generator& generator) const {
  torch::Tensor out = torch::empty({numel}, torch::kDouble);
  if (numel > 0) out.normal_(0.0, std_, generator);
  return out;
}

torch::Tensor GaussianNoise::secure_noise(int64_t numel) const {
  torch::Tensor out = torch::empty({numel}, torch::kDouble);
  double* dst = out.data_ptr<double>();
  const double scale = 0.5 * std_;
  constexpr int64_t kGrain = 4096;
  at::parallel_for(0, numel, kGrain, [&](int64_t begin, int64_t end) {
    // Four uniforms per Box-Muller pair of pairs: u1, u2 -> Z1, Z2 and u3, u4 -> Z3, Z4.
    std::array<uint64_t, 4 * kGrain> bits;
    for (int64_t s = begin; s < end; s += kGrain) {
      const int64_t n = std::min(kGrain, end - s);
      os_random_bytes(bits.data(), static_cast<size_t>(4 * n) * sizeof(uint64_t));
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t* b = &bits[4 * i];
        const double r1 = std::sqrt(-2.0 * std::log(open_uniform(b[0])));
        const double t1 = 2.0 * M_PI * uniform(b[1]);
        const double r2 = std::sqrt(-2.0 * std::log(open_uniform(b[2])));
        const double t2 = 2.0 * M_PI * uniform(b[3]);
        const double sum =
            r1 * std::cos(t1) + r1 * std::sin(t1) + r2 * std::cos(t2) + r2 * std::sin(t2);
        dst[s + i] = scale * sum;
      }
    }
  });
  return out;
}

torch::Tensor GaussianNoise::sample(int64_t numel, int64_t step) const {
  UMBRA_CHECK(numel >= 0, "GaussianNoise::sample: negative size ", numel);
  if (secure_mode_) return secure_noise(numel);
  const uint64_t s = static_cast<uint64_t>(step);
  const auto words =
      philox4x32({static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32), kNoiseTag, 0},
                 {static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32)});
  at::Generator generator = at::detail::createCPUGenerator((static_cast<uint64_t>(words[0]) << 32) |
                                                           static_cast<uint64_t>(words[1]));
  return seeded_noise(numel, generator);
}

bool GaussianNoise::add(const std::vector<torch::Tensor>& tensors, int64_t step, int rank) const {
  if (rank != kNoiseRank) return false;
  torch::NoGradGuard no_grad;
  int64_t total = 0;
  for (const auto& t : tensors) {
    UMBRA_CHECK(t.defined(), "GaussianNoise::add: undefined gradient tensor");
    total += t.numel();
  }
  // One stream for all tensors in order: step s's noise does not depend on how the gradient is
  // split into tensors (buckets or parameters).
  const torch::Tensor noise = sample(total, step);
  int64_t offset = 0;
  for (const auto& t : tensors) {
    const int64_t n = t.numel();
    t.add_(noise.narrow(0, offset, n).view(t.sizes()).to(t.options()));
    offset += n;
  }
  return true;
}

}  // namespace umbra
