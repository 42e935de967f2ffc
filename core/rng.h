// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//
// u(seed, stream, counter) is a pure function: any rank, thread or resumed process that asks for
// the same (seed, stream, counter) gets the same number, with no generator state to carry. This is
// what makes sampling independent of the world size (DESIGN.md §4). Streams separate uses of the
// same seed (permutation, Poisson inclusion, augmentation, ...); see kStream* below.
#pragma once

#include <array>
#include <cstdint>

namespace umbra {

// Stream tags: the high 16 bits of a 64-bit stream id; the low 48 bits are free for an epoch
// or step number. Never reuse a tag for a different purpose.
enum class RngStream : uint16_t {
  kPermutation = 1,  // epoch permutation, low bits = epoch
  kPoisson = 2,      // Poisson inclusion, low bits = step
  kAugment = 3,      // horizontal flips, low bits = step
  kCanary = 4,       // canaries: low bits 0 inclusion coins, 1 + j canary j (data/canaries.h)
  kSplit = 5,        // train/test split when packing folders
  kTraining = 6,     // per-sample training randomness (t, noise, label dropout), low bits = step
  kEvaluation = 7,   // evaluation draws (dequantisation, ELBO samples)
  kDropout = 8,      // per-rank dropout seed, low bits = step
  kNoise = 9,        // DP noise seed outside secure_mode, low bits = step
  kTest = 15,        // tests only
};

constexpr uint64_t rng_stream(RngStream tag, uint64_t low48) {
  return (static_cast<uint64_t>(tag) << 48) | (low48 & ((uint64_t{1} << 48) - 1));
}

// The raw generator: 128-bit counter + 64-bit key -> four 32-bit words.
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// Uniform in [0, 1) with 53 random bits.
double rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);

// Uniform integer in [0, n) without modulo bias (n > 0).
uint64_t rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t n);

// Standard normal (Box-Muller on one Philox block).
double rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);

}  // namespace umbra
