#include "audit/knn.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "audit_test_util.h"
#include "comm/single_communicator.h"
#include "core/check.h"

namespace umbra {
namespace {

using audit_test::fmnist_test;
using audit_test::fmnist_train;

// Brute force, written independently of the GEMM path: every distance computed directly in
// float64 on the [C, H, W] images (tiles cut by slicing), all rows sorted by (distance, id).
KnnResult brute_force(const torch::Tensor& queries, const torch::Tensor& reference,
                      const torch::Tensor& ids, int64_t k, int64_t tile) {
  const torch::Tensor q = queries.to(torch::kFloat64), r = reference.to(torch::kFloat64);
  const int64_t nq = q.size(0), n = r.size(0);
  torch::Tensor dist = torch::empty({nq, n}, torch::kFloat64);
  for (int64_t i = 0; i < nq; ++i) {
    const torch::Tensor sq = (r - q[i].unsqueeze(0)).pow(2);  // [N, C, H, W]
    if (tile == 0) {
      dist[i] = sq.flatten(1).mean(1).sqrt();
      continue;
    }
    torch::Tensor worst = torch::zeros({n}, torch::kFloat64);
    for (int64_t y = 0; y < q.size(2); y += tile) {
      for (int64_t x = 0; x < q.size(3); x += tile) {
        const torch::Tensor part = sq.slice(2, y, y + tile).slice(3, x, x + tile);
        worst = torch::max(worst, part.flatten(1).mean(1).sqrt());
      }
    }
    dist[i] = worst;
  }
  KnnResult out{torch::empty({nq, k}, torch::kFloat64), torch::empty({nq, k}, torch::kInt64)};
  auto d = dist.accessor<double, 2>();
  auto id = ids.accessor<int64_t, 1>();
  for (int64_t i = 0; i < nq; ++i) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return d[i][a] != d[i][b] ? d[i][a] < d[i][b] : id[a] < id[b];
    });
    for (int64_t j = 0; j < k; ++j) {
      out.distance[i][j] = d[i][order[j]];
      out.id[i][j] = id[order[j]];
    }
  }
  return out;
}

void expect_same(const KnnResult& a, const KnnResult& b, double tol = 0) {
  ASSERT_EQ(a.distance.sizes(), b.distance.sizes());
  EXPECT_TRUE(torch::equal(a.id, b.id));
  const double diff = (a.distance - b.distance).abs().max().item<double>();
  if (tol == 0) {
    EXPECT_TRUE(torch::equal(a.distance, b.distance)) << "max difference " << diff;
  } else {
    EXPECT_LE(diff, tol);
  }
}

TEST(Knn, EqualsBruteForceWithSmallBlocks) {
  torch::manual_seed(1);
  const torch::Tensor reference = torch::rand({500, 1, 8, 8}) * 2 - 1;
  torch::Tensor queries = torch::rand({37, 1, 8, 8}) * 2 - 1;
  // Some queries are (noisy) copies, some references duplicated: ties must break by id.
  queries.narrow(0, 0, 5).copy_(reference.narrow(0, 10, 5));
  queries.narrow(0, 5, 5).copy_(reference.narrow(0, 20, 5) + 0.01 * torch::randn({5, 1, 8, 8}));
  torch::Tensor ref = torch::cat({reference, reference.narrow(0, 10, 3)});
  const torch::Tensor ids = torch::arange(ref.size(0), torch::kInt64) * 3 + 1000;
  KnnOptions options;
  options.k = 10;
  options.reference_block = 97;
  options.query_block = 16;
  const KnnResult fast = knn_search(queries, ref, ids, options);
  expect_same(fast, brute_force(queries, ref, ids, 10, 0), 1e-6);
  // The exact copies sit at distance 0 from both of their identical references.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(fast.distance[i][0].item<double>(), 0.0);
    EXPECT_EQ(fast.distance[i][1].item<double>(), 0.0);
    EXPECT_EQ(fast.id[i][0].item<int64_t>(), 1000 + 3 * (10 + i));
  }
}

TEST(Knn, TiledEqualsBruteForce) {
  torch::manual_seed(2);
  const torch::Tensor reference = torch::rand({300, 2, 10, 10}) * 2 - 1;
  torch::Tensor queries = torch::rand({20, 2, 10, 10}) * 2 - 1;
  queries.narrow(0, 0, 4).copy_(reference.narrow(0, 0, 4) + 0.02 * torch::randn({4, 2, 10, 10}));
  const torch::Tensor ids = torch::arange(300, torch::kInt64);
  KnnOptions options;
  options.k = 7;
  options.metric = KnnMetric::kTiledRms;
  options.tile = 4;  // does not divide 10: edge tiles are 4 x 2, 2 x 4, 2 x 2
  options.reference_block = 64;
  options.query_block = 8;
  expect_same(knn_search(queries, reference, ids, options),
              brute_force(queries, reference, ids, 7, 4), 1e-6);
  options.tile = 0;  // ceil(10 / 4) = 3
  expect_same(knn_search(queries, reference, ids, options),
              brute_force(queries, reference, ids, 7, 3), 1e-6);
}

TEST(Knn, RealImagesEqualBruteForce) {
  const torch::Tensor reference = fmnist_train().images.narrow(0, 0, 3000);
  const torch::Tensor queries = fmnist_test().images.narrow(0, 0, 25);
  const torch::Tensor ids = torch::arange(3000, torch::kInt64);
  KnnOptions options;
  options.k = 50;
  options.reference_block = 1000;
  expect_same(knn_search(queries, reference, ids, options),
              brute_force(queries, reference, ids, 50, 0), 1e-6);
}

KnnOptions with_k(int64_t k) {
  KnnOptions o;
  o.k = k;
  return o;
}

TEST(Knn, PadsWhenTheReferenceIsSmall) {
  const torch::Tensor reference = torch::rand({3, 4});
  const KnnResult r = knn_search(torch::rand({2, 4}), reference, {}, with_k(5));
  EXPECT_TRUE(torch::isfinite(r.distance.narrow(1, 0, 3)).all().item<bool>());
  EXPECT_TRUE(torch::isinf(r.distance.narrow(1, 3, 2)).all().item<bool>());
  EXPECT_TRUE(r.id.narrow(1, 3, 2).eq(-1).all().item<bool>());
  const KnnResult empty = knn_search(torch::rand({2, 4}), torch::rand({0, 4}), {}, with_k(2));
  EXPECT_TRUE(empty.id.eq(-1).all().item<bool>());
}

TEST(Knn, RejectsBadInputs) {
  EXPECT_THROW(knn_search(torch::rand({2, 4}), torch::rand({3, 5}), {}), Error);
  EXPECT_THROW(knn_search(torch::rand({2, 4}), torch::rand({3, 4}), torch::arange(2)), Error);
  EXPECT_THROW(knn_search(torch::rand({2, 4}), torch::rand({3, 4}), {}, with_k(0)), Error);
  KnnOptions tiled;
  tiled.metric = KnnMetric::kTiledRms;
  EXPECT_THROW(knn_search(torch::rand({2, 4}), torch::rand({3, 4}), {}, tiled), Error);
}

// The real audit setting: queries = held-out test images plus exact and noisy copies of training
// images; the training set split into 2 and 3 shards (contiguous and strided) must give exactly
// the 1-shard result.
TEST(Knn, ShardedMergeEqualsOneShard) {
  const torch::Tensor train = fmnist_train().images.narrow(0, 0, 6000);
  const torch::Tensor ids = torch::arange(6000, torch::kInt64) + 100;
  torch::manual_seed(3);
  const torch::Tensor copies = train.narrow(0, 500, 20);
  const torch::Tensor queries =
      torch::cat({fmnist_test().images.narrow(0, 0, 100), copies,
                  (copies + 0.05 * torch::randn_like(copies)).clamp(-1, 1)});
  for (KnnMetric metric : {KnnMetric::kRms, KnnMetric::kTiledRms}) {
    KnnOptions options;
    options.metric = metric;
    options.reference_block = 1500;
    const KnnResult whole = knn_search(queries, train, ids, options);
    for (int64_t shards : {2, 3}) {
      std::vector<KnnResult> contiguous, strided;
      const int64_t per = (6000 + shards - 1) / shards;
      for (int64_t s = 0; s < shards; ++s) {
        const int64_t begin = s * per, len = std::min<int64_t>(per, 6000 - begin);
        contiguous.push_back(
            knn_search(queries, train.narrow(0, begin, len), ids.narrow(0, begin, len), options));
        const torch::Tensor rows = torch::arange(s, 6000, shards, torch::kInt64);
        strided.push_back(
            knn_search(queries, train.index_select(0, rows), ids.index_select(0, rows), options));
      }
      SCOPED_TRACE(std::string(knn_metric_name(metric)) + ", shards " + std::to_string(shards));
      expect_same(merge_knn(contiguous, options.k), whole);
      expect_same(merge_knn(strided, options.k), whole);
    }
  }
}

TEST(Knn, ShardedOnOneRankEqualsLocal) {
  SingleCommunicator comm;
  const torch::Tensor train = fmnist_train().images.narrow(0, 0, 2000);
  const torch::Tensor queries = fmnist_test().images.narrow(0, 0, 30);
  const torch::Tensor ids = torch::arange(2000, torch::kInt64);
  expect_same(knn_search_sharded(comm, queries, train, ids), knn_search(queries, train, ids));
}

TEST(Knn, SquaredDistancesMatchDirect) {
  torch::manual_seed(4);
  const torch::Tensor a = torch::randn({13, 6}), b = torch::randn({9, 6});
  const torch::Tensor direct = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(2);
  EXPECT_TRUE(torch::allclose(squared_distances(a, b), direct, 1e-5, 1e-5));
}

}  // namespace
}  // namespace umbra
