// Canaries for the one-run privacy audit (DESIGN.md §9, config keys data.canaries.* of §11).
//
// m = data.canaries.count canaries, j = 0..m-1. Canary j is a pure function of (seed, j) and the
// dataset (no generator state), so the trainer on any number of ranks, a resumed run and the
// audit all rebuild exactly the same images, labels and ids:
//  - kind "ood": an out-of-distribution pattern, clearly not a dataset image: a random mid-grey
//    background (48..207) with 3-6 solid rectangles and 1-3 thick strokes, each at least 96 grey
//    levels away from the background (high contrast), plus a uniformly random label.
//  - kind "relabel": held-out TEST image number floor(j * T / m) of the T test images (evenly
//    spaced over the test split) with a wrong label: (true + 1 + r) mod K, r uniform in
//    [0, K - 2] for K classes. Test images never enter training otherwise, so a canary left out
//    really is out. An included relabel canary is a trained image, so the audit's held-out null
//    and membership non-members and the trainer's held-out ELBO use only the test images no
//    canary took (heldout_test_positions).
// Randomness: Philox stream rng_stream(kCanary, 1 + j), counter = draw number, for canary j's
// pattern or wrong label; the inclusion coins use rng_stream(kCanary, 0), counter = j.
//
// Ids: canary j has the global sample id kCanaryIdBase + j (10^12 + j): outside every dataset's id
// range (packers number images from 0; with_canaries checks it) and stable across runs.
//
// Inclusion: canary j joins the training set iff canary_inclusion(seed, m)[j] (probability 1/2
// each). The seed is the secret of the audit's guessing game: it lives in the run's config.yaml
// and canaries.json, and must not be published with a release (audit/release_run.cc drops it).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/options.h"
#include "data/dataset.h"

namespace umbra {

constexpr int64_t kCanaryIdBase = 1'000'000'000'000;
constexpr int64_t kMaxCanaries = 100'000;  // 78 MB of 28x28 canaries; far more than an audit needs

// Config section data.canaries.
struct CanaryOptions {
  int64_t count = 0;
  std::string kind = "ood";
  int64_t seed = -1;  // -1: not set (an error when count > 0)

  bool enabled() const { return count > 0; }

  template <class V>
  void visit(V& v) {
    v("count", count,
      "Canaries m for the one-run audit; each joins the training set with probability 1/2 "
      "(0 = none)",
      InRange{0, static_cast<double>(kMaxCanaries)});
    v("kind", kind,
      "ood: random high-contrast rectangles and strokes with a random label; relabel: test "
      "image floor(j*T/m) with a wrong label",
      OneOf{"ood", "relabel"});
    v("seed", seed,
      "Sealed seed of the canaries' inclusion coins and patterns; must be set (>= 0) when "
      "count > 0; keep it secret until the audit");
  }

  // Key-level rules the visitor cannot state (seed set when count > 0); throws naming the key.
  void validate() const;
};

// Canary j's image (uint8 [C, H, W] of `meta`), label and id.
struct Canary {
  std::vector<uint8_t> image;
  int64_t label = 0;
  int64_t id = 0;
};

// Canary j of `options` for a dataset of `meta`. `test` is the test split (required for
// "relabel", ignored for "ood"). Throws naming the key when the options do not fit the data
// (relabel with more canaries than test images or fewer than 2 classes).
Canary make_canary(const CanaryOptions& options, const DatasetMeta& meta, const SplitData* test,
                   int64_t j);

// The test-split positions that "relabel" canaries take (canary j: j·T/m for T test images),
// ascending; empty for "ood" or no canaries. An included relabel canary is a trained image, so
// the audit keeps these out of its held-out (non-member) sets.
std::vector<int64_t> canary_test_positions(const CanaryOptions& options, int64_t test_count);

// The other test positions, ascending: the held-out images of the audit and the trainer.
std::vector<int64_t> heldout_test_positions(const CanaryOptions& options, int64_t test_count);

// All m canaries as a split named "canaries": position j holds canary j.
SplitData make_canaries(const CanaryOptions& options, const DatasetMeta& meta,
                        const SplitData* test);

// Inclusion coins of canaries 0..m-1 from the sealed seed (stream kCanary, counter = j).
std::vector<bool> canary_inclusion(uint64_t seed, int64_t m);

// `train` with the included canaries appended in canary order (the positions of `train` are
// unchanged). Throws when a training id collides with the canary id range.
SplitData with_canaries(const SplitData& train, const SplitData& canaries,
                        const std::vector<bool>& included);

}  // namespace umbra
