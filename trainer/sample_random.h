// Per-sample random generators that make training independent of the world size.
//
// Every random draw of a training step that belongs to one sample (diffusion timestep and noise,
// label dropout, the autoencoder's reparameterisation noise) comes from a generator seeded by
// (run seed, stream, global step, global sample id), so a sample gets the same draws whichever
// rank holds it and however the batch is cut: N ranks reproduce 1 rank.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "core/rng.h"

namespace umbra {

inline at::Generator sample_generator(uint64_t seed, RngStream tag, int64_t step, int64_t id) {
  const auto block =
      philox4x32({static_cast<uint32_t>(id), static_cast<uint32_t>(static_cast<uint64_t>(id) >> 32),
                  static_cast<uint32_t>(step), static_cast<uint32_t>(static_cast<uint64_t>(tag))},
                 {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  const uint64_t s = (static_cast<uint64_t>(block[0]) << 32) | block[1];
  return at::detail::createCPUGenerator(s);
}

// One generator for a whole step (e.g. the DP noise outside secure_mode, dropout masks).
inline uint64_t step_seed(uint64_t seed, RngStream tag, int64_t step, int64_t salt = 0) {
  const auto block = philox4x32(
      {static_cast<uint32_t>(step), static_cast<uint32_t>(static_cast<uint64_t>(step) >> 32),
       static_cast<uint32_t>(salt), static_cast<uint32_t>(static_cast<uint64_t>(tag))},
      {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  return (static_cast<uint64_t>(block[0]) << 32) | block[1];
}

}  // namespace umbra
