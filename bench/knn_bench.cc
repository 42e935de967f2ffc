// k-NN search rate of the memorisation audit (audit/knn.h) against a plain GEMM of the same shape.
//
// Prints, for Q queries against N reference images of D = 784 pixels (Fashion-MNIST test images
// against the training set), with T intra-op threads:
//   - the exact k-NN search (k = 50, RMS metric and the 4 x 4 tiled metric): wall time, distance
//     computations per second (Q * N / time) and achieved GFLOP/s counting the GEMM work only
//     (2 * Q * N * D);
//   - torch::mm over the same blocks (query_block x D times D x reference_block, every block of
//     the search, output preallocated): the GEMM ceiling the search is compared with.
// usage: knn_bench [Q=10000] [N=60000] [threads=2]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "audit/knn.h"
#include "core/pixels.h"
#include "data/idx.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

torch::Tensor fmnist(const std::string& prefix, int64_t count) {
  const std::string dir = umbra::kFashionMnistDir;
  const umbra::IdxImages idx = umbra::read_idx_pair(dir + "/" + prefix + "-images-idx3-ubyte.gz",
                                                    dir + "/" + prefix + "-labels-idx1-ubyte.gz");
  const torch::Tensor all = umbra::pixels_to_model(
      torch::from_blob(const_cast<uint8_t*>(idx.images.data()),
                       {idx.count(), 1, idx.height, idx.width}, torch::kUInt8));
  // Repeat when more images are asked for than the file holds (the timing only needs the shape).
  return all.repeat({(count + idx.count() - 1) / idx.count(), 1, 1, 1}).narrow(0, 0, count);
}

// Plain GEMM over the search's blocks.
double gemm_seconds(const torch::Tensor& q, const torch::Tensor& r, const umbra::KnnOptions& o) {
  const int64_t nq = q.size(0), n = r.size(0);
  torch::Tensor out = torch::empty({o.query_block, o.reference_block});
  const auto start = Clock::now();
  for (int64_t q0 = 0; q0 < nq; q0 += o.query_block) {
    const int64_t qb = std::min(o.query_block, nq - q0);
    for (int64_t n0 = 0; n0 < n; n0 += o.reference_block) {
      const int64_t nb = std::min(o.reference_block, n - n0);
      torch::Tensor dst = out.narrow(0, 0, qb).narrow(1, 0, nb);
      torch::mm_out(dst, q.narrow(0, q0, qb), r.narrow(0, n0, nb).t());
    }
  }
  return seconds_since(start);
}

void report(const char* what, double seconds, int64_t nq, int64_t n, int64_t d) {
  const double distances = static_cast<double>(nq) * static_cast<double>(n);
  std::printf("%-28s %9.2f s  %10.3g distances/s  %8.1f GFLOP/s\n", what, seconds,
              distances / seconds, 2.0 * distances * static_cast<double>(d) / seconds / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t nq = argc > 1 ? std::atoll(argv[1]) : 10000;
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 60000;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  torch::set_num_threads(threads);
  torch::NoGradGuard no_grad;
  const torch::Tensor queries = fmnist("t10k", nq);
  const torch::Tensor reference = fmnist("train", n);
  const torch::Tensor ids = torch::arange(n, torch::kInt64);
  const int64_t d = queries[0].numel();
  std::printf(
      "knn_bench: Q = %lld queries, N = %lld reference images, D = %lld, k = 50, "
      "%d threads (torch reports %d)\n",
      static_cast<long long>(nq), static_cast<long long>(n), static_cast<long long>(d), threads,
      torch::get_num_threads());

  umbra::KnnOptions options;
  // Warm-up (BLAS buffers, page faults) on a slice.
  umbra::knn_search(queries.narrow(0, 0, std::min<int64_t>(nq, 256)), reference, ids, options);

  const torch::Tensor q2 = queries.reshape({nq, d}).contiguous();
  const torch::Tensor r2 = reference.reshape({n, d}).contiguous();
  report("torch::mm, same blocks", gemm_seconds(q2, r2, options), nq, n, d);

  auto start = Clock::now();
  const umbra::KnnResult rms = umbra::knn_search(queries, reference, ids, options);
  report("k-NN search, RMS", seconds_since(start), nq, n, d);

  options.metric = umbra::KnnMetric::kTiledRms;
  start = Clock::now();
  const umbra::KnnResult tiled = umbra::knn_search(queries, reference, ids, options);
  report("k-NN search, tiled 4x4", seconds_since(start), nq, n, d);

  std::printf("mean nearest distance: RMS %.4f, tiled %.4f (pixel units in [-1, 1])\n",
              rms.distance.select(1, 0).mean().item<double>(),
              tiled.distance.select(1, 0).mean().item<double>());
  return 0;
}
