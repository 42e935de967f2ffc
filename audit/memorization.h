// Memorisation check (DESIGN.md §9; Carlini et al. 2023, "Extracting Training Data from Diffusion
// Models", §4/§5 "(l2, alpha, delta)-Diffusion Extraction").
//
// For a generated image g with nearest training images n_1, ..., n_k (exact k-NN, audit/knn.h):
//   r(g) = d(g, n_1) / (alpha * mean_{i=1..k} d(g, n_i)),   alpha = 0.5, k = 50,
// flagged as a memorised copy when r(g) < 1: g is at least twice as close to its nearest training
// image as to its typical neighbour. The same statistic computed for held-out real test images
// (never trained on) is the null: the flag rate of genuinely new images. A model that memorises
// shows a generated flag rate above the null rate; the flagged pairs are the evidence.
//
// Images are float [N, C, H, W] in [-1, 1] (see audit/knn.h for the distance units).
// Thread-safety: pure functions.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "audit/knn.h"

namespace umbra {

struct CarliniOptions {
  int64_t k = 50;
  double alpha = 0.5;
  KnnMetric metric = KnnMetric::kRms;
  int64_t tile = 0;  // kTiledRms only; see audit/knn.h
};

// Per-query memorisation statistics; all tensors [Q] on the CPU.
struct MemorizationScores {
  torch::Tensor score;              // float64, r(g)
  torch::Tensor flagged;            // bool, r(g) < 1
  torch::Tensor nearest_id;         // int64, global id of the nearest training image
  torch::Tensor nearest_distance;   // float64, d(g, n_1)
  torch::Tensor mean_knn_distance;  // float64, mean of the k nearest distances
  int64_t num_queries() const { return score.size(0); }
  int64_t num_flagged() const;
  double flag_rate() const;  // num_flagged / num_queries (0 when empty)
};

// r(g) from a k-NN result (every row must hold k finite distances: the reference set needs at
// least k images). When all k distances are 0 (the query equals k identical training images)
// r = 0 and the query is flagged.
MemorizationScores carlini_scores(const KnnResult& knn, double alpha = 0.5);

// Both sides of the check.
struct MemorizationReport {
  CarliniOptions options;
  MemorizationScores generated;
  MemorizationScores heldout;  // the null
  double generated_flag_rate() const { return generated.flag_rate(); }
  double null_flag_rate() const { return heldout.flag_rate(); }
  // {"k", "alpha", "metric", "generated": {"count", "flagged", "flag_rate", "copied_training_ids":
  //  [{"id", "flagged_samples"}, ...] (the nearest training image of each flagged sample, most
  //  copied first)}, "heldout": {"count", "flagged", "flag_rate"},
  //  "worst": [{"index", "score", "nearest_id", "nearest_distance"}, ...] (up to `worst` rows)}.
  nlohmann::json to_json(int64_t worst = 20) const;
};

// Runs both k-NN searches over the training set (sharded over `comm`'s ranks when given: each rank
// passes its slice of the training set and the slice's global ids; generated and heldout must be
// the same on every rank) and scores them.
MemorizationReport memorization_check(const torch::Tensor& generated, const torch::Tensor& heldout,
                                      const torch::Tensor& training,
                                      const torch::Tensor& training_ids,
                                      const CarliniOptions& options = {},
                                      Communicator* comm = nullptr);

// Indices of the `count` lowest scores (most memorised first; ties by index).
std::vector<int64_t> worst_queries(const MemorizationScores& scores, int64_t count);

// Fetches training images by global id: returns [ids.size(), C, H, W] in [-1, 1], in order.
using TrainingImageLookup = std::function<torch::Tensor(const std::vector<int64_t>& ids)>;

// Writes the worst pairs as a PNG grid: for each of the `count` lowest-score generated images, the
// generated image then its nearest training image, `pairs_per_row` pairs per grid row. Unless
// include_training_images is set, the training image is redacted: a mid-grey tile with the
// training id written in white digits (so the pair can be looked up privately), and `lookup` is
// not called (it may be empty). Returns the generated-image indices written, in grid order.
std::vector<int64_t> write_worst_pairs(const std::string& path, const torch::Tensor& generated,
                                       const MemorizationScores& scores, int64_t count,
                                       bool include_training_images,
                                       const TrainingImageLookup& lookup,
                                       int64_t pairs_per_row = 4);

// A [C, H, W] mid-grey tile (value 0 in [-1, 1]) with `id` in white 3x5-pixel digits (scaled up
// when the tile is large, wrapped onto several lines when narrow). Exposed for tests.
torch::Tensor redacted_tile(int64_t id, int64_t channels, int64_t height, int64_t width);

}  // namespace umbra
