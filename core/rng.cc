#include "core/rng.h"

#include <cmath>

namespace umbra {
namespace {

constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

std::array<uint32_t, 4> block(uint64_t seed, uint64_t stream, uint64_t counter) {
  return philox4x32({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32),
                     static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)},
                    {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
}

double to_unit(uint32_t hi, uint32_t lo) {
  const uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);  // 53 bits
  return static_cast<double>(bits & ((uint64_t{1} << 53) - 1)) * 0x1.0p-53;
}

}  // namespace

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * ctr[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * ctr[2];
    ctr = {static_cast<uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<uint32_t>(p1),
           static_cast<uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<uint32_t>(p0)};
    key[0] += kWeyl0;
    key[1] += kWeyl1;
  }
  return ctr;
}

double rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
  const auto b = block(seed, stream, counter);
  return to_unit(b[0], b[1]);
}

uint64_t rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t n) {
  // Lemire-style rejection on 64-bit words; successive words of the same block, then of
  // further counters in a disjoint high range, so the result stays a pure function.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % n + 1) % n;
  for (uint64_t attempt = 0;; ++attempt) {
    const auto b = block(seed, stream ^ (attempt << 40), counter);
    for (int k = 0; k < 2; ++k) {
      const uint64_t x = (static_cast<uint64_t>(b[2 * k]) << 32) | b[2 * k + 1];
      if (x <= limit) return x % n;
    }
  }
}

double rng_normal(uint64_t seed, uint64_t stream, uint64_t counter) {
  const auto b = block(seed, stream, counter);
  const double u1 = 1.0 - to_unit(b[0], b[1]);  // (0, 1]
  const double u2 = to_unit(b[2], b[3]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

}  // namespace umbra
