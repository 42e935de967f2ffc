// The sharded k-NN search over real MPI ranks (run by mpirun with 2 and 3 ranks): every rank holds
// a slice of the Fashion-MNIST training subset, and the global result must equal the 1-process
// search over the whole subset, which every rank also computes for itself.
#include <gtest/gtest.h>

#include "audit/knn.h"
#include "audit/memorization.h"
#include "comm/mpi_communicator.h"
#include "tests/audit/audit_test_util.h"

namespace umbra {
namespace {

using audit_test::fmnist_test;
using audit_test::fmnist_train;

std::unique_ptr<MpiCommunicator> make_comm() {
  CommOptions options;
  options.timeout_s = 120;
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, options);
}

struct Slice {
  torch::Tensor images, ids;
};

// Strided split (rank r holds rows r, r + size, ...) with global ids 100 + row.
Slice slice_of(const torch::Tensor& train, int rank, int size) {
  const torch::Tensor rows = torch::arange(rank, train.size(0), size, torch::kInt64);
  return {train.index_select(0, rows), rows + 100};
}

TEST(KnnShardedMpi, EqualsOneProcessSearch) {
  auto comm = make_comm();
  const torch::Tensor train = fmnist_train().images.narrow(0, 0, 5000);
  torch::manual_seed(1);  // identical queries on every rank
  const torch::Tensor copies = train.narrow(0, 1234, 10);
  const torch::Tensor queries =
      torch::cat({fmnist_test().images.narrow(0, 0, 60), copies,
                  (copies + 0.05 * torch::randn_like(copies)).clamp(-1, 1)});
  const Slice mine = slice_of(train, comm->rank(), comm->size());
  const torch::Tensor all_ids = torch::arange(5000, torch::kInt64) + 100;
  for (KnnMetric metric : {KnnMetric::kRms, KnnMetric::kTiledRms}) {
    KnnOptions options;
    options.metric = metric;
    const KnnResult sharded = knn_search_sharded(*comm, queries, mine.images, mine.ids, options);
    const KnnResult whole = knn_search(queries, train, all_ids, options);
    EXPECT_TRUE(torch::equal(sharded.id, whole.id)) << knn_metric_name(metric);
    EXPECT_TRUE(torch::equal(sharded.distance, whole.distance)) << knn_metric_name(metric);
  }
}

// A rank whose slice is empty or shorter than k still takes part (its rows are padding).
TEST(KnnShardedMpi, SmallAndEmptySlices) {
  auto comm = make_comm();
  const torch::Tensor train = fmnist_train().images.narrow(0, 0, 60);
  const torch::Tensor queries = fmnist_test().images.narrow(0, 0, 7);
  // Rank 0 holds 50 images, rank 1 the other 10, any further rank none.
  const int64_t begin = comm->rank() == 0 ? 0 : 50;
  const int64_t len = comm->rank() == 0 ? 50 : (comm->rank() == 1 ? 10 : 0);
  const torch::Tensor ids = torch::arange(begin, begin + len, torch::kInt64);
  const KnnResult sharded =
      knn_search_sharded(*comm, queries, train.narrow(0, begin, len), ids, KnnOptions{});
  const KnnResult whole = knn_search(queries, train, torch::arange(60, torch::kInt64));
  EXPECT_TRUE(torch::equal(sharded.id, whole.id));
  EXPECT_TRUE(torch::equal(sharded.distance, whole.distance));
}

TEST(KnnShardedMpi, MemorizationCheckMatches) {
  auto comm = make_comm();
  const torch::Tensor train = fmnist_train().images.narrow(0, 0, 4000);
  const torch::Tensor generated =
      torch::cat({train.narrow(0, 10, 5), fmnist_test().images.narrow(0, 100, 45)});
  const torch::Tensor heldout = fmnist_test().images.narrow(0, 0, 100);
  const Slice mine = slice_of(train, comm->rank(), comm->size());
  const MemorizationReport sharded =
      memorization_check(generated, heldout, mine.images, mine.ids, {}, comm.get());
  const MemorizationReport whole = memorization_check(
      generated, heldout, train, torch::arange(4000, torch::kInt64) + 100, {}, nullptr);
  EXPECT_TRUE(torch::equal(sharded.generated.score, whole.generated.score));
  EXPECT_TRUE(torch::equal(sharded.heldout.score, whole.heldout.score));
  EXPECT_GE(sharded.generated.num_flagged(), 5);
  EXPECT_EQ(sharded.to_json(), whole.to_json());
}

}  // namespace
}  // namespace umbra
