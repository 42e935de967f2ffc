// `umbra audit`: what a trained run gives away and how good it is (DESIGN.md §9), end to end.
//
// Steps (every rank of `comm` calls run_audit with the same options; rank 0 writes):
//  1. samples: N class-balanced images from the run (labels 0,0,..,1,1,..; EMA weights, the run's
//     sampler settings), generated in fixed chunks of 256 dealt round-robin to the ranks, each
//     chunk seeded by (seed + first index) — the same images on any number of ranks.
//  2. memorisation (audit/memorization.h): exact k-NN (k = 50, per-pixel RMS) of the samples over
//     the distinct images of the training split (byte-identical duplicates count once, or a
//     duplicated image would fill the k neighbours with itself and hide its copies), cut into
//     contiguous slices, one per rank, with a global top-k merge; the same statistic for min(N,
//     test size) held-out test images is the null. Worst pairs as a PNG grid, training images
//     redacted unless include_training_images.
//  3. membership inference (audit/membership.h): `members` training images (evenly spaced over
//     the split) vs as many held-out test images. Scores (lower = member): the diffusion loss of
//     the prior at t in {50, 100, 200, 300} with fixed noise seeds (2 draws per t), averaged, on
//     the posterior-mean latents times the run's scale factor; and the autoencoder's -ELBO (nats,
//     4 latent draws, fixed seed). AUC, TPR at 1% and 0.1% FPR, ROC SVGs. Chunks dealt to ranks.
//  4. canaries (audit/canary_audit.h): the run's data.canaries rebuilt from its config.yaml
//     (checked against <run>/canaries.json), each scored by the autoencoder's -ELBO (nats,
//     elbo_draws latent draws, fixed seeds; chunks dealt to the ranks as in step 3, so any number
//     of ranks gives the same scores); the canary_guesses lowest/highest-loss canaries guessed
//     IN/OUT and the one-run ε lower bound (95%, δ = the run's δ when DP). Runs without canaries
//     report the section as not present.
//  5. quality (rank 0 only, after the last collective): the DPDM CNN trained on the REAL training
//     split as the feature extractor (FID-proxy, precision/recall k = 3 against real test images;
//     audit/quality.h) and the downstream accuracy of the DPDM CNN trained on the N samples,
//     tested on the real test split (the DPDM protocol with N samples instead of 60,000 unless
//     N = 60,000).
//
// Gates (summary.json "gates"; "passed" is true when every applicable gate passes):
//  - memorisation: generated flag rate <= held-out null flag rate + flag_rate_margin.
//  - canaries (DP runs with canaries): empirical ε lower bound <= the accountant's ε.
//  - accounting (DP runs with a target): recomputed ε <= privacy.target_epsilon.
//
// Files under out_dir (rank 0): summary.json, index.html, samples.png, worst_pairs.png,
// roc_diffusion.svg, roc_elbo.svg. Each is written atomically. The page and the stdout table:
// audit/audit_page.h.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace umbra {

class Communicator;

struct AuditOptions {
  std::string run_dir;
  std::string out_dir;   // empty: <run_dir>/audit
  std::string data_dir;  // empty: the run's data.path
  int64_t samples = 1000;
  uint64_t seed = 0;
  bool include_training_images = false;
  bool quick = false;      // smaller quality/membership sizes, for tests and smoke runs
  int64_t members = 1000;  // membership inference: members and as many non-members (capped)
  double flag_rate_margin = 0.01;
  int64_t classifier_epochs = 5;   // feature classifier on the real training split
  int64_t downstream_epochs = 50;  // DPDM CNN on the samples
  bool quality = true;             // false: skip step 5 (reported as skipped)
  std::vector<int64_t> mia_timesteps = {50, 100, 200, 300};
  int64_t mia_noise_draws = 2;
  int64_t elbo_draws = 4;
  int64_t canary_guesses = 0;  // 0: default_canary_guesses(m) (audit/canary_audit.h)

  // Applies `quick` (caps sizes and epochs) and fills defaults; throws UsageError on bad values.
  void resolve();
};

// Runs the audit; returns summary.json's object (complete on rank 0; other ranks get the parts
// they computed). Throws umbra::Error naming the file/field on bad input (no run, no prior, no
// test split, too few training images for k = 50).
nlohmann::json run_audit(AuditOptions options, Communicator& comm);

}  // namespace umbra
