// Distributed DP-SGD (DESIGN.md §5 "Distributed DP") on N real MPI ranks:
//  - the noise of a step is added exactly once whatever the world size: an empty step's
//    all-reduced gradient has std sigma*C/(q*N) on 1, 2 and 3 ranks (each rank adding its own
//    draw would give sqrt(N) times that), and every rank holds the same gradient;
//  - with sigma = 0 the N-rank clipped, summed gradient equals the one process computes over the
//    whole logical batch.
#include <gtest/gtest.h>

#include <cmath>

#include "comm/mpi_communicator.h"
#include "comm/single_communicator.h"
#include "data/sampler.h"
#include "tests/trainer/dp_test_model.h"
#include "trainer/dp_step.h"

namespace umbra {
namespace {

using namespace dp_test;

std::unique_ptr<MpiCommunicator> make_comm() {
  CommOptions options;
  options.timeout_s = 120;
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, options);
}

PrivacyOptions dp_options(double max_grad_norm) {
  PrivacyOptions o;
  o.enabled = true;
  o.max_grad_norm = max_grad_norm;
  return o;
}

torch::Tensor flat_grads(const std::vector<std::pair<std::string, torch::Tensor>>& params) {
  std::vector<torch::Tensor> flat;
  for (const auto& p : params) flat.push_back(p.second.grad().flatten());
  return torch::cat(flat).to(torch::kFloat64);
}

TEST(DpStepMpi, NoiseIsAddedOncePerStepWhateverTheWorldSize) {
  auto comm = make_comm();
  Autoencoder model = tiny_autoencoder(3);
  const auto params = trainable(*model);
  GradientSyncOptions so;
  so.use_hooks = false;
  GradientSync sync(*comm, params, so);
  const double sigma = 1.5, c = 2.0, qn = 6.0;
  DpGradient dp(*model, params, dp_options(c), 1, sigma, qn, 21, comm->rank());
  dp.begin_step();
  dp.finish(sync, 0);
  const torch::Tensor g = flat_grads(params);
  const double expected = sigma * c / qn;
  const double measured = g.std().item<double>();
  EXPECT_NEAR(measured, expected, 0.03 * expected)
      << "world size " << comm->size() << ": noise std " << measured << ", expected " << expected;
  // Every rank holds the same (all-reduced) gradient.
  const torch::Tensor rank0 = comm->all_gather(g.to(torch::kFloat32), "gradients")[0];
  EXPECT_TRUE(torch::equal(rank0, g.to(torch::kFloat32)));
  if (comm->rank() == 0) {
    std::printf("noise std on %d rank(s): %.6f (expected %.6f, %+.2f%%)\n", comm->size(), measured,
                expected, 100 * (measured / expected - 1));
  }
}

TEST(DpStepMpi, ClippedSumOverRanksEqualsOneProcess) {
  auto comm = make_comm();
  const int64_t n = 7;
  const double qn = 8.0, c = 0.05;  // some samples are clipped, some not
  const torch::Tensor x = images(n, 9);

  // The whole batch on this process alone.
  Autoencoder ref_model = tiny_autoencoder(3);
  const auto ref_params = trainable(*ref_model);
  SingleCommunicator single;
  torch::Tensor reference;
  {
    GradientSyncOptions so;
    so.use_hooks = false;
    GradientSync sync(single, ref_params, so);
    DpGradient dp(*ref_model, ref_params, dp_options(c), 1, 0.0, qn, 1, 0);
    dp.begin_step();
    dp.accumulate(per_sample_loss(ref_model, x), n);
    dp.finish(sync, 0);
    reference = flat_grads(ref_params);
  }

  // This rank's contiguous slice.
  Autoencoder model = tiny_autoencoder(3);
  const auto params = trainable(*model);
  GradientSyncOptions so;
  so.use_hooks = false;
  GradientSync sync(*comm, params, so);
  DpGradient dp(*model, params, dp_options(c), 1, 0.0, qn, 1, comm->rank());
  const auto [begin, end] = rank_slice(n, comm->rank(), comm->size());
  dp.begin_step();
  if (end > begin) dp.accumulate(per_sample_loss(model, x.slice(0, begin, end)), end - begin);
  dp.finish(sync, 0);
  const torch::Tensor g = flat_grads(params);
  const double rel = (g - reference).abs().max().item<double>() /
                     std::max(reference.abs().max().item<double>(), 1e-12);
  EXPECT_LE(rel, 1e-5) << "world size " << comm->size();
}

}  // namespace
}  // namespace umbra
