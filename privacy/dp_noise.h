// The Gaussian noise of DP-SGD: N(0, σ²C²) added to the clipped gradient sum exactly once per
// step across all ranks (DESIGN.md §5 "Distributed DP" and "Noise RNG").
//
// Distributed contract: every rank calls add() on its own clipped sum BEFORE the SUM all-reduce;
// only rank 0 (kNoiseRank) adds noise, the others return untouched. The all-reduced sum then
// carries the noise of exactly one draw, whatever the world size.
//
// Sources:
//  - seeded (default): LibTorch's CPU generator, re-seeded for every step from (seed, step)
//    through Philox4x32, so a step's noise is a pure function of (seed, step): reproducible, and a
//    resumed run needs no generator state in its checkpoint. Not for production privacy claims
//    (an attacker who knows the seed can subtract the noise).
//  - secure_mode: uniform bits from the OS CSPRNG (getrandom(2), blocking until the kernel pool is
//    initialised). Each value is std · (Z1 + Z2 + Z3 + Z4) / 2 with Z_k independent standard
//    normals from Box-Muller in double precision on 53-bit uniforms: the sum of four Gaussians
//    has the same N(0, std²) law but hides the floating-point structure of a single Box-Muller
//    draw that precision attacks exploit (Mironov 2012; Holohan & Braghin 2021; Opacus'
//    secure_mode uses the same sum-of-4 construction). Not reproducible, by design.
// Noise is generated on the CPU in float64 and added in the tensor's dtype and device.
//
// Thread-safety: a GaussianNoise is immutable after construction; add() may be called from
// several threads on disjoint tensors.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace umbra {

class GaussianNoise {
 public:
  static constexpr int kNoiseRank = 0;

  // std = noise_multiplier · sensitivity (σ · C). Throws umbra::Error for negative or
  // non-finite values.
  GaussianNoise(double noise_multiplier, double sensitivity, bool secure_mode, uint64_t seed);

  double std() const { return std_; }
  bool secure_mode() const { return secure_mode_; }

  // Adds independent N(0, std²) to every element of every tensor, in place, when rank == 0;
  // returns whether it added. `step` selects the seeded stream (ignored in secure_mode).
  bool add(const std::vector<torch::Tensor>& tensors, int64_t step, int rank) const;

  // One draw of `numel` values as a float64 CPU tensor (the noise add() would use for a single
  // tensor of that size at `step`).
  torch::Tensor sample(int64_t numel, int64_t step) const;

 private:
  torch::Tensor seeded_noise(int64_t numel, at::Generator& generator) const;
  torch::Tensor secure_noise(int64_t numel) const;

  double std_;
  bool secure_mode_;
  uint64_t seed_;
};

// Fills `out` with bytes from the OS CSPRNG (getrandom); throws umbra::Error naming errno.
void os_random_bytes(void* out, size_t size);

}  // namespace umbra
