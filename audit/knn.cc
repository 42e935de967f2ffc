#include "audit/knn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "comm/communicator.h"
#include "core/check.h"

namespace umbra {
namespace {

// Columns of a flattened [C, H, W] image in tile order: every tile's C*th*tw values are one
// contiguous segment (tile t occupies [offset[t], offset[t] + size[t])).
struct TileLayout {
  torch::Tensor order;  // [D] int64 permutation of the flattened columns; undefined for kRms
  std::vector<int64_t> offset, size;
};

TileLayout make_layout(const torch::Tensor& images, const KnnOptions& options) {
  TileLayout layout;
  if (options.metric == KnnMetric::kRms) {
    int64_t d = 1;
    for (int64_t i = 1; i < images.dim(); ++i) d *= images.size(i);
    layout.offset = {0};
    layout.size = {d};
    return layout;
  }
  UMBRA_CHECK(images.dim() == 4, "knn_search: the tiled metric needs images [N, C, H, W], got ",
              images.sizes());
  const int64_t c = images.size(1), h = images.size(2), w = images.size(3);
  const int64_t tile = options.tile > 0 ? options.tile : (h + 3) / 4;
  UMBRA_CHECK(tile >= 1, "knn_search: tile must be >= 1, got ", options.tile);
  std::vector<int64_t> order;
  order.reserve(c * h * w);
  for (int64_t y0 = 0; y0 < h; y0 += tile) {
    for (int64_t x0 = 0; x0 < w; x0 += tile) {
      layout.offset.push_back(static_cast<int64_t>(order.size()));
      for (int64_t ch = 0; ch < c; ++ch) {
        for (int64_t y = y0; y < std::min(h, y0 + tile); ++y) {
          for (int64_t x = x0; x < std::min(w, x0 + tile); ++x)
            order.push_back((ch * h + y) * w + x);
        }
      }
      layout.size.push_back(static_cast<int64_t>(order.size()) - layout.offset.back());
    }
  }
  layout.order = torch::tensor(order, torch::kInt64);
  return layout;
}

// [N, D] float32 contiguous, columns in tile order.
torch::Tensor flatten_rows(const torch::Tensor& x, const TileLayout& layout) {
  int64_t d = 1;  // not reshape({N, -1}): N may be 0 (an empty shard)
  for (int64_t i = 1; i < x.dim(); ++i) d *= x.size(i);
  torch::Tensor flat = x.reshape({x.size(0), d}).to(torch::kFloat32);
  if (layout.order.defined()) flat = flat.index_select(1, layout.order);
  return flat.contiguous();
}

// [N, T] squared norm of each tile segment.
torch::Tensor tile_square_norms(const torch::Tensor& flat, const TileLayout& layout) {
  std::vector<torch::Tensor> norms;
  for (size_t t = 0; t < layout.size.size(); ++t) {
    const torch::Tensor part = flat.narrow(1, layout.offset[t], layout.size[t]);
    norms.push_back((part * part).sum(1));
  }
  return torch::stack(norms, 1);
}

// Sorts each row by (distance, id) and keeps the first k columns, padding with (+inf, -1).
KnnResult sort_and_truncate(torch::Tensor distance, torch::Tensor id, int64_t k) {
  const int64_t q = distance.size(0);
  if (distance.size(1) > 0) {
    // Stable sort by id, then stable sort by distance: lexicographic (distance, id).
    // (c10::optional<bool> spelled out: a plain `true` would bind to sort(self, dim, descending).)
    const c10::optional<bool> stable = true;
    torch::Tensor by_id = std::get<1>(torch::sort(id, stable, /*dim=*/1, /*descending=*/false));
    distance = distance.gather(1, by_id);
    id = id.gather(1, by_id);
    torch::Tensor by_distance =
        std::get<1>(torch::sort(distance, stable, /*dim=*/1, /*descending=*/false));
    distance = distance.gather(1, by_distance);
    id = id.gather(1, by_distance);
  }
  const int64_t keep = std::min(k, distance.size(1));
  KnnResult out;
  out.distance = torch::full({q, k}, std::numeric_limits<double>::infinity(), torch::kFloat64);
  out.id = torch::full({q, k}, int64_t{-1}, torch::kInt64);
  if (keep > 0) {
    out.distance.narrow(1, 0, keep).copy_(distance.narrow(1, 0, keep));
    out.id.narrow(1, 0, keep).copy_(id.narrow(1, 0, keep));
  }
  return out;
}

// Exact distances of each query row to its candidate reference rows, from direct differences
// (torch::cdist without the GEMM shortcut: no cancellation, exactly 0 for identical images; each
// pair's value depends only on the two rows, so shards agree bit for bit). Returned as float64.
//   q: [Qb, D] float32 (tile order), cand: [Qb, M] local row indices into ref [N, D].
torch::Tensor exact_distances(const torch::Tensor& q, const torch::Tensor& ref,
                              const torch::Tensor& cand, const TileLayout& layout,
                              KnnMetric metric) {
  const int64_t qb = q.size(0), m = cand.size(1), d = q.size(1);
  constexpr int64_t kChunk = 64;  // queries per chunk: kChunk * M * D floats gathered at once
  constexpr int64_t kDirect = 2;  // cdist compute_mode "donot_use_mm_for_euclid_dist"
  torch::Tensor out = torch::empty({qb, m}, torch::kFloat64);
  for (int64_t c0 = 0; c0 < qb; c0 += kChunk) {
    const int64_t cn = std::min(kChunk, qb - c0);
    const torch::Tensor rows =
        ref.index_select(0, cand.narrow(0, c0, cn).reshape({-1})).view({cn, m, d});
    const torch::Tensor query = q.narrow(0, c0, cn).unsqueeze(1);  // [cn, 1, D]
    torch::Tensor rms;
    for (size_t t = 0; t < layout.size.size(); ++t) {
      const int64_t off = layout.offset[t], len = layout.size[t];
      const torch::Tensor norm =
          metric == KnnMetric::kRms
              ? torch::cdist(query, rows, 2.0, kDirect)
              : torch::cdist(query.narrow(2, off, len).contiguous(),
                             rows.narrow(2, off, len).contiguous(), 2.0, kDirect);
      const torch::Tensor tile_rms =
          norm.squeeze(1).to(torch::kFloat64).div_(std::sqrt(static_cast<double>(len)));
      rms = t == 0 ? tile_rms : torch::max(rms, tile_rms);
    }
    out.narrow(0, c0, cn).copy_(rms);
  }
  return out;
}

// Per query row, the `capacity` smallest (key, reference row) pairs seen so far, as max-heaps
// (the FAISS brute-force scheme): a block costs one pass over its keys, since an element enters
// only when it beats the row's current worst, which is rare after the first blocks. Ordering is
// lexicographic on (key, row), so the selection does not depend on the block layout.
class RowSelection {
 public:
  RowSelection(int64_t rows, int64_t capacity)
      : rows_(rows), capacity_(capacity), heaps_(static_cast<size_t>(rows * capacity)) {}

  // key: [rows, nb] float32 contiguous, column j is reference row offset + j.
  void add_block(const torch::Tensor& key, int64_t offset) {
    const int64_t nb = key.size(1);
    const float* data = key.data_ptr<float>();
    const int64_t filled = filled_;
    at::parallel_for(0, rows_, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        Entry* heap = heaps_.data() + r * capacity_;
        int64_t size = filled;
        const float* row = data + r * nb;
        for (int64_t j = 0; j < nb; ++j) {
          const Entry e{row[j], offset + j};
          if (size < capacity_) {
            heap[size++] = e;
            std::push_heap(heap, heap + size);
          } else if (e < heap[0]) {
            std::pop_heap(heap, heap + size);
            heap[size - 1] = e;
            std::push_heap(heap, heap + size);
          }
        }
      }
    });
    filled_ = std::min(capacity_, filled_ + nb);
  }

  // [rows, min(capacity, seen)] int64 reference rows (unordered).
  torch::Tensor rows() const {
    torch::Tensor out = torch::empty({rows_, filled_}, torch::kInt64);
    auto a = out.accessor<int64_t, 2>();
    for (int64_t r = 0; r < rows_; ++r) {
      for (int64_t j = 0; j < filled_; ++j) a[r][j] = heaps_[r * capacity_ + j].row;
    }
    return out;
  }

 private:
  struct Entry {
    float key;
    int64_t row;
    // NaN keys (a NaN pixel) compare as larger than everything: never preferred.
    bool operator<(const Entry& o) const {
      if (std::isnan(key) || std::isnan(o.key)) return !std::isnan(key);
      return key != o.key ? key < o.key : row < o.row;
    }
  };
  int64_t rows_, capacity_, filled_ = 0;
  std::vector<Entry> heaps_;
};

}  // namespace

const char* knn_metric_name(KnnMetric metric) {
  return metric == KnnMetric::kRms ? "rms" : "tiled_rms";
}

KnnResult knn_search(const torch::Tensor& queries, const torch::Tensor& reference,
                     const torch::Tensor& ids, const KnnOptions& options) {
  UMBRA_CHECK(options.k >= 1, "knn_search: k must be >= 1, got ", options.k);
  UMBRA_CHECK(options.reference_block >= 1 && options.query_block >= 1,
              "knn_search: block sizes must be >= 1, got reference_block ", options.reference_block,
              ", query_block ", options.query_block);
  UMBRA_CHECK(queries.defined() && queries.dim() >= 2 && queries.is_floating_point(),
              "knn_search: queries must be a floating-point [Q, ...] tensor");
  UMBRA_CHECK(reference.defined() && reference.dim() == queries.dim() &&
                  reference.is_floating_point() &&
                  reference.sizes().slice(1) == queries.sizes().slice(1),
              "knn_search: reference must be floating point with the queries' per-image shape ",
              queries.sizes().slice(1), ", got ", reference.sizes());
  const int64_t n = reference.size(0), nq = queries.size(0), k = options.k;
  torch::Tensor global_ids =
      ids.defined() ? ids.to(torch::kInt64).contiguous() : torch::arange(n, torch::kInt64);
  UMBRA_CHECK(global_ids.dim() == 1 && global_ids.size(0) == n, "knn_search: ids must be [N] = [",
              n, "], got ", global_ids.sizes());

  const TileLayout layout = make_layout(queries, options);
  const torch::Tensor ref = flatten_rows(reference.cpu(), layout);
  const torch::Tensor qry = flatten_rows(queries.cpu(), layout);
  const int64_t num_tiles = static_cast<int64_t>(layout.size.size());
  const torch::Tensor ref_norms = tile_square_norms(ref, layout);
  const int64_t kc = std::min(n, k + std::max<int64_t>(k, 16));  // candidates before re-ranking

  KnnResult result;
  result.distance = torch::empty({nq, k}, torch::kFloat64);
  result.id = torch::empty({nq, k}, torch::kInt64);
  torch::NoGradGuard no_grad;
  for (int64_t q0 = 0; q0 < nq; q0 += options.query_block) {
    const int64_t qb = std::min(options.query_block, nq - q0);
    const torch::Tensor q = qry.narrow(0, q0, qb);
    const torch::Tensor q_norms = tile_square_norms(q, layout);
    RowSelection best(qb, kc);
    for (int64_t n0 = 0; n0 < n; n0 += options.reference_block) {
      const int64_t nb = std::min(options.reference_block, n - n0);
      torch::Tensor key;
      for (int64_t t = 0; t < num_tiles; ++t) {
        const torch::Tensor qt = q.narrow(1, layout.offset[t], layout.size[t]);
        const torch::Tensor rt = ref.narrow(0, n0, nb).narrow(1, layout.offset[t], layout.size[t]);
        const double scale = 1.0 / static_cast<double>(layout.size[t]);
        // ||b||^2 - 2 a.b (scaled to a mean): the query's own ||a||^2 is constant along a row and
        // does not change a row's ranking, so the untiled metric skips it (one pass saved).
        torch::Tensor d2 = torch::addmm(ref_norms.narrow(0, n0, nb).select(1, t).unsqueeze(0), qt,
                                        rt.t(), /*beta=*/scale, /*alpha=*/-2 * scale);
        if (options.metric == KnnMetric::kRms) {
          key = d2;
        } else {
          d2.add_(q_norms.select(1, t).unsqueeze(1), scale);
          key = t == 0 ? d2 : torch::max_out(key, key, d2);
        }
      }
      best.add_block(key.contiguous(), n0);
    }
    const torch::Tensor best_row = best.rows();
    const torch::Tensor exact = exact_distances(q, ref, best_row, layout, options.metric);
    const torch::Tensor cand_ids =
        global_ids.index_select(0, best_row.reshape({-1})).view_as(best_row);
    KnnResult block = sort_and_truncate(exact, cand_ids, k);
    result.distance.narrow(0, q0, qb).copy_(block.distance);
    result.id.narrow(0, q0, qb).copy_(block.id);
  }
  return result;
}

KnnResult merge_knn(const std::vector<KnnResult>& parts, int64_t k) {
  UMBRA_CHECK(!parts.empty(), "merge_knn: no parts to merge");
  UMBRA_CHECK(k >= 1, "merge_knn: k must be >= 1, got ", k);
  std::vector<torch::Tensor> distances, ids;
  for (const KnnResult& part : parts) {
    UMBRA_CHECK(part.distance.dim() == 2 && part.id.sizes() == part.distance.sizes() &&
                    part.distance.size(0) == parts[0].distance.size(0),
                "merge_knn: every part must be [Q, k_i] with Q = ", parts[0].distance.size(0),
                ", got distance ", part.distance.sizes(), " and id ", part.id.sizes());
    distances.push_back(part.distance.to(torch::kFloat64));
    ids.push_back(part.id.to(torch::kInt64));
  }
  return sort_and_truncate(torch::cat(distances, 1), torch::cat(ids, 1), k);
}

KnnResult knn_search_sharded(Communicator& comm, const torch::Tensor& queries,
                             const torch::Tensor& local_reference, const torch::Tensor& local_ids,
                             const KnnOptions& options) {
  const KnnResult local = knn_search(queries, local_reference, local_ids, options);
  const torch::Tensor distances = comm.all_gather(local.distance, "knn_search_sharded/distance");
  const torch::Tensor ids = comm.all_gather(local.id, "knn_search_sharded/id");
  std::vector<KnnResult> parts;
  for (int64_t r = 0; r < distances.size(0); ++r) parts.push_back({distances[r], ids[r]});
  return merge_knn(parts, options.k);
}

torch::Tensor squared_distances(const torch::Tensor& a, const torch::Tensor& b) {
  UMBRA_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1),
              "squared_distances: expected [A, D] and [B, D], got ", a.sizes(), " and ", b.sizes());
  const torch::Tensor x = a.to(torch::kFloat32).contiguous();
  const torch::Tensor y = b.to(torch::kFloat32).contiguous();
  torch::Tensor d2 = torch::addmm((y * y).sum(1).unsqueeze(0), x, y.t(), 1, -2);
  return d2.add_((x * x).sum(1).unsqueeze(1)).clamp_min_(0);
}

}  // namespace umbra
