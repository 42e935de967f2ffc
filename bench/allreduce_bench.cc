// All-reduce throughput: Umbra's bucketed gradient path vs one raw MPI_Allreduce of the same
// bytes (issue 5, benchmark (a); target overhead <= 5%).
//
//   mpirun -np 2 build/bench/allreduce_bench [--mb 40] [--iters 20]
//
// The gradient set is model-shaped: blocks of 3x3 conv weights (64-256 channels), biases and
// GroupNorm affine vectors, in float32, up to --mb MiB. Variants, interleaved per iteration so
// that machine noise hits all alike, each iteration starting after a barrier and timed as the
// slowest rank's time:
//   raw MPI_Allreduce  one in-place MPI_Allreduce of a flat buffer of the same size, main thread
//   comm all_reduce    MpiCommunicator::all_reduce_sum of that flat buffer (communication thread)
//   bucketed (X MiB)   GradientSync: gradients handed in in reverse order (as backward does),
//                      packed into buckets, async all-reduce per bucket, unpacked into .grad
//                      and divided by the normaliser (finish)
// Overhead = median time / median raw time - 1.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "comm/gradient_sync.h"
#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"

namespace {

using umbra::GradientSync;
using umbra::GradientSyncOptions;
using umbra::MpiCommunicator;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<std::vector<int64_t>> model_shapes(int64_t target_bytes) {
  const int64_t channels[] = {64, 64, 128, 128, 256, 256, 256, 256};
  std::vector<std::vector<int64_t>> shapes;
  int64_t bytes = 0;
  for (int k = 0; bytes < target_bytes; ++k) {
    const int64_t c = channels[k % 8];
    for (std::vector<int64_t> s : {std::vector<int64_t>{c, c, 3, 3}, {c}, {c}, {c}}) {
      shapes.push_back(s);
      int64_t n = 1;
      for (int64_t d : s) n *= d;
      bytes += 4 * n;
    }
  }
  return shapes;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  umbra::MpiSession session(&argc, &argv);
  double mb = 40;
  int iters = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--mb") == 0) mb = std::atof(argv[i + 1]);
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::atoi(argv[i + 1]);
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm raw;
  MPI_Comm_dup(MPI_COMM_WORLD, &raw);

  umbra::CommOptions options;
  MpiCommunicator comm(MPI_COMM_WORLD, options);

  const auto shapes = model_shapes(static_cast<int64_t>(mb * (1 << 20)));
  std::vector<std::pair<std::string, torch::Tensor>> params;
  std::vector<torch::Tensor> grads;
  int64_t numel = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    params.emplace_back("p" + std::to_string(i), torch::zeros(shapes[i]).requires_grad_());
    grads.push_back(torch::full(shapes[i], static_cast<float>(rank + 1)));
    numel += grads.back().numel();
  }
  const double bytes = 4.0 * numel;
  torch::Tensor flat = torch::ones({numel});

  struct Variant {
    std::string name;
    std::unique_ptr<GradientSync> sync;
    std::vector<double> times;
  };
  std::vector<Variant> variants;
  variants.push_back({"raw MPI_Allreduce", nullptr, {}});
  variants.push_back({"comm all_reduce (1 tensor)", nullptr, {}});
  for (double bucket_mb : {25.0, 5.0, 100.0}) {
    GradientSyncOptions o;
    o.bucket_bytes = static_cast<int64_t>(bucket_mb * (1 << 20));
    o.first_bucket_bytes = std::min<int64_t>(o.bucket_bytes, 1 << 20);
    o.use_hooks = false;
    auto sync = std::make_unique<GradientSync>(comm, params, o);
    char name[96];
    std::snprintf(name, sizeof(name), "bucketed %g MiB (%zu buckets)", bucket_mb,
                  sync->buckets().size());
    variants.push_back({name, std::move(sync), {}});
  }

  for (int it = -2; it < iters; ++it) {  // two warm-up rounds
    for (Variant& v : variants) {
      MPI_Barrier(raw);
      const double start = now_s();
      if (v.name.rfind("raw", 0) == 0) {
        MPI_Allreduce(MPI_IN_PLACE, flat.data_ptr<float>(), static_cast<int>(numel), MPI_FLOAT,
                      MPI_SUM, raw);
      } else if (!v.sync) {
        comm.all_reduce_sum(flat);
      } else {
        for (size_t i = grads.size(); i-- > 0;) v.sync->mark_ready(i, grads[i]);
        v.sync->finish(1.0);
      }
      double elapsed = now_s() - start;
      MPI_Allreduce(MPI_IN_PLACE, &elapsed, 1, MPI_DOUBLE, MPI_MAX, raw);
      if (it >= 0) v.times.push_back(elapsed);
      flat.fill_(1.0f);
    }
  }

  // The bucketed result must be the sum over ranks.
  const float want = size * (size + 1) / 2.0f;
  const bool correct =
      torch::equal(params.back().second.grad(), torch::full_like(grads.back(), want));

  if (rank == 0) {
    const double raw_median = median(variants[0].times);
    std::printf(
        "all-reduce of %.1f MiB of float32 gradients in %zu tensors, %d ranks, %d "
        "iterations (median / min of the slowest rank)\n\n",
        bytes / (1 << 20), shapes.size(), size, iters);
    std::printf("| variant | median ms | min ms | GB/s (bytes/median) | overhead vs raw |\n");
    std::printf("|---|---|---|---|---|\n");
    for (const Variant& v : variants) {
      const double m = median(v.times);
      const double lo = *std::min_element(v.times.begin(), v.times.end());
      std::printf("| %s | %.2f | %.2f | %.2f | %+.1f%% |\n", v.name.c_str(), 1e3 * m, 1e3 * lo,
                  bytes / m / 1e9, 100.0 * (m / raw_median - 1.0));
    }
    std::printf("\nbucketed result equals the sum over ranks: %s\n", correct ? "yes" : "NO");
  }
  variants.clear();
  MPI_Comm_free(&raw);
  return correct ? 0 : 1;
}
