// Exact k-nearest-neighbour search of images over a reference (training) set by GEMM
// (DESIGN.md §9; Carlini et al. 2023, "Extracting Training Data from Diffusion Models").
//
// Pixel space: images are float tensors in the model's pixel range [-1, 1] (the range
// save_image_grid and the samplers use). Any consistent range works; distances come out in the
// units of the input, so in [-1, 1] space a distance of 1 is half the full black-to-white range.
// The Carlini score built on these distances (audit/memorization.h) is a ratio and does not depend
// on the range.
//
// Metrics (d is what is reported and ranked, the smaller the closer):
//   kRms       d(a, b) = sqrt(mean over all C*H*W values of (a - b)^2), the per-pixel RMS.
//   kTiledRms  the image is cut into square tiles of `tile` x `tile` pixels (all channels; edge
//   tiles
//              are smaller when `tile` does not divide H or W) and d(a, b) = max over tiles of the
//              tile's RMS. Carlini et al. use 16 non-overlapping 8x8 tiles on 32x32 CIFAR-10
//              images; tile = 0 picks the same layout for any size, ceil(H / 4) (7 for 28x28
//              Fashion-MNIST, 8 for 32x32), i.e. a 4 x 4 grid of tiles.
//
// Algorithm (exact, memory bounded): ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b with the cross term
// one GEMM per (query block, reference block) pair (per tile for kTiledRms). Each query keeps a
// running top-k' (k' = k + max(k, 16)) by these float32 GEMM distances, merged block by block; the
// k' candidates are then re-ranked by the distance recomputed from direct differences (the GEMM
// identity cancels catastrophically for near-identical images, which are the ones the audit is
// about; the direct form gives exactly 0 for a copy), and the best k kept, ties broken by the
// smaller id. The candidate margin makes the result exact unless more than k' - k references lie
// within float32 round-off (~1e-6 relative) of the k-th distance. Memory: query_block x
// reference_block floats for the distance block, plus the reference itself (a second, tile-ordered
// copy for kTiledRms).
//
// Thread-safety: pure functions; LibTorch's intra-op threads parallelise the GEMMs (set the thread
// count before calling).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace umbra {

class Communicator;

enum class KnnMetric { kRms, kTiledRms };

const char* knn_metric_name(KnnMetric metric);

struct KnnOptions {
  int64_t k = 50;
  KnnMetric metric = KnnMetric::kRms;
  // kTiledRms only: tile side in pixels; 0 = ceil(H / 4) (a 4 x 4 grid, see above).
  int64_t tile = 0;
  // Reference rows per GEMM block and query rows per block: the distance block is
  // query_block x reference_block floats (16 MiB by default).
  int64_t reference_block = 4096;
  int64_t query_block = 1024;
};

// distance: [Q, k] float64, ascending along each row; id: [Q, k] int64, the reference ids (global
// ids as passed in). When the reference set holds fewer than k images the tail of each row is
// padded with distance = +inf and id = -1 (a rank's shard may be small; merges drop the padding).
struct KnnResult {
  torch::Tensor distance;
  torch::Tensor id;
  int64_t num_queries() const { return distance.size(0); }
  int64_t k() const { return distance.size(1); }
};

// Exact k-NN of `queries` over `reference`.
//   queries:   [Q, C, H, W] (or [Q, D] for kRms) floating point, any device-independent CPU tensor.
//   reference: [N, C, H, W] (or [N, D]) with the same per-image shape; N >= 0.
//   ids:       [N] int64 global ids of the reference rows (an undefined tensor means 0..N-1).
// Throws umbra::Error on shape mismatch, k < 1, or a tiled metric on non-image inputs.
KnnResult knn_search(const torch::Tensor& queries, const torch::Tensor& reference,
                     const torch::Tensor& ids, const KnnOptions& options = {});

// Global top-k of per-shard results for the same queries (each part [Q, k_i]; any k_i, padding
// allowed): rows merged, sorted by (distance, id), the first k kept. Pure function; the sharded
// search below is all_gather + this.
KnnResult merge_knn(const std::vector<KnnResult>& parts, int64_t k);

// Sharded search: every rank passes the same queries and its own slice of the reference set with
// the slices' global ids; each rank computes its local top-k, the lists are all_gathered and
// merged, and every rank returns the same global result (equal to knn_search over the union of
// the slices). Collective: every rank of `comm` must call it with the same Q, k and options.
KnnResult knn_search_sharded(Communicator& comm, const torch::Tensor& queries,
                             const torch::Tensor& local_reference, const torch::Tensor& local_ids,
                             const KnnOptions& options = {});

// Squared Euclidean distances between the rows of a [A, D] and b [B, D] by the GEMM identity,
// clamped at 0: [A, B] float32. For moderate sizes (the caller blocks). Used by the feature-space
// metrics of audit/quality.h.
torch::Tensor squared_distances(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace umbra
