// Parameter broadcast and bucketed gradient sync on N ranks against one process computing the
// whole global batch (the 1-process reference runs inside the test, on every rank).
#include "comm/gradient_sync.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "comm/mpi_communicator.h"
#include "comm/parameter_broadcast.h"
#include "core/check.h"

namespace umbra {
namespace {

std::unique_ptr<MpiCommunicator> make_comm() {
  CommOptions options;
  options.timeout_s = 120;
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, options);
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A small conv net with a buffer and a parameter the forward pass never uses.
struct NetImpl : torch::nn::Module {
  explicit NetImpl(int64_t hidden = 32) {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
    fc1 = register_module("fc1", torch::nn::Linear(4 * 6 * 6, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, 5));
    unused = register_parameter("unused", torch::randn({3}));
    scale = register_buffer("scale", torch::rand({1}) + 0.5);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = torch::relu(conv(x)).flatten(1);
    return fc2(torch::tanh(fc1(h))) * scale;
  }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::Tensor unused, scale;
};
TORCH_MODULE(Net);

// This rank's slice [begin, end) of a global batch of n samples (uneven splits allowed).
std::pair<int64_t, int64_t> slice(int64_t n, int rank, int size) {
  const int64_t base = n / size, extra = n % size;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

torch::Tensor summed_loss(Net& net, const torch::Tensor& x, const torch::Tensor& y) {
  return torch::nn::functional::cross_entropy(
      net->forward(x), y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

void expect_same_parameters(Net& got, Net& want, double rtol, double atol,
                            const std::string& what) {
  const auto g = got->named_parameters();
  const auto w = want->named_parameters();
  for (const auto& item : w) {
    EXPECT_TRUE(torch::allclose(g[item.key()], item.value(), rtol, atol))
        << what << " " << item.key();
  }
}

TEST(ParameterBroadcast, EveryRankGetsRankZerosParametersAndBuffers) {
  auto comm = make_comm();
  torch::manual_seed(1000 + comm->rank());  // different initialisation on every rank
  Net net;
  broadcast_parameters(*comm, *net);
  torch::manual_seed(1000);  // what rank 0 drew
  Net rank0;
  for (const auto& item : rank0->named_parameters()) {
    EXPECT_TRUE(torch::equal(net->named_parameters()[item.key()], item.value())) << item.key();
  }
  EXPECT_TRUE(torch::equal(net->named_buffers()["scale"], rank0->named_buffers()["scale"]));
}

TEST(ParameterBroadcast, ShapeMismatchNamesTheParameterAndRanks) {
  auto comm = make_comm();
  Net net(comm->rank() == 1 ? 33 : 32);
  const std::string error = error_of([&] { broadcast_parameters(*comm, *net); });
  EXPECT_EQ(error,
            "parameters and buffers differ across ranks: 'fc1.weight' is Float [33, 144] on rank "
            "1 but Float [32, 144] on rank 0 (ranks that differ from rank 0: 1)");
  // A rank with an extra parameter.
  auto module = std::make_shared<torch::nn::Module>();
  module->register_parameter("a", torch::zeros({2}));
  if (comm->rank() == comm->size() - 1) module->register_parameter("b", torch::zeros({2}));
  const std::string extra = error_of([&] { broadcast_parameters(*comm, *module); });
  const std::string last = std::to_string(comm->size() - 1);
  EXPECT_EQ(extra, "parameters and buffers differ across ranks: rank " + last +
                       " has 2 entries, rank 0 has 1; the first extra on rank " + last +
                       " is 'b' Float [2] (ranks that differ from rank 0: " + last + ")");
  // The bucket layout check catches the same mismatch when the sync is set up.
  EXPECT_NE(error_of([&] { GradientSync sync(*comm, net->named_parameters()); })
                .find("gradient bucket layout (SHA-256 of parameter names, shapes and dtypes; "
                      "broadcast_parameters reports the first differing parameter) differs "
                      "across ranks"),
            std::string::npos);
}

struct SyncCase {
  int64_t first_bucket_bytes;
  int64_t bucket_bytes;
};

class GradientSyncMatchesOneProcess : public ::testing::TestWithParam<SyncCase> {};

TEST_P(GradientSyncMatchesOneProcess, ThreeSgdStepsWithHooks) {
  auto comm = make_comm();
  const int64_t global_batch = 11;  // uneven over 2 and 3 ranks
  torch::manual_seed(1000 + comm->rank());
  Net net;
  broadcast_parameters(*comm, *net);
  torch::manual_seed(1000);
  Net reference;  // rank 0's initialisation, trained on the whole batch in this process

  GradientSyncOptions options;
  options.first_bucket_bytes = GetParam().first_bucket_bytes;
  options.bucket_bytes = GetParam().bucket_bytes;
  GradientSync sync(*comm, net->named_parameters(), options);
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.5));
  torch::optim::SGD ref_opt(reference->parameters(), torch::optim::SGDOptions(0.5));
  const auto [begin, end] = slice(global_batch, comm->rank(), comm->size());

  for (int step = 0; step < 3; ++step) {
    torch::manual_seed(50 + step);  // the same global batch on every rank
    const torch::Tensor x = torch::randn({global_batch, 1, 6, 6});
    const torch::Tensor y = torch::randint(0, 5, {global_batch});

    ref_opt.zero_grad();
    torch::nn::functional::cross_entropy(reference->forward(x), y).backward();
    ref_opt.step();

    opt.zero_grad();
    comm->set_step(step);
    summed_loss(net, x.slice(0, begin, end), y.slice(0, begin, end)).backward();
    sync.finish(static_cast<double>(global_batch));
    // The unused parameter gets a zero gradient rather than none.
    EXPECT_TRUE(torch::equal(net->unused.grad(), torch::zeros({3})));
    opt.step();
    expect_same_parameters(net, reference, 1e-5, 1e-6, "step " + std::to_string(step));
  }
  EXPECT_GE(sync.last_wait_seconds(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Buckets, GradientSyncMatchesOneProcess,
                         ::testing::Values(SyncCase{int64_t{1} << 20, int64_t{25} << 20},
                                           SyncCase{256, 2048}, SyncCase{1, 1}));

TEST(GradientSync, AccumulatedMicroBatches) {
  auto comm = make_comm();
  const int64_t global_batch = 12;
  torch::manual_seed(7);
  Net net, reference;
  broadcast_parameters(*comm, *net);
  {
    torch::NoGradGuard no_grad;
    for (const auto& item : net->named_parameters()) {
      reference->named_parameters()[item.key()].copy_(item.value());
    }
    for (const auto& item : net->named_buffers()) {
      reference->named_buffers()[item.key()].copy_(item.value());
    }
  }
  torch::manual_seed(8);
  const torch::Tensor x = torch::randn({global_batch, 1, 6, 6});
  const torch::Tensor y = torch::randint(0, 5, {global_batch});
  torch::nn::functional::cross_entropy(reference->forward(x), y).backward();

  GradientSyncOptions options;
  options.first_bucket_bytes = 512;
  options.bucket_bytes = 4096;
  GradientSync sync(*comm, net->named_parameters(), options);
  const auto [begin, end] = slice(global_batch, comm->rank(), comm->size());
  const int64_t mid = (begin + end) / 2;
  sync.set_enabled(false);  // first micro-batch: accumulate locally only
  summed_loss(net, x.slice(0, begin, mid), y.slice(0, begin, mid)).backward();
  sync.set_enabled(true);
  summed_loss(net, x.slice(0, mid, end), y.slice(0, mid, end)).backward();
  sync.finish(static_cast<double>(global_batch));
  for (const auto& item : reference->named_parameters()) {
    if (item.key() == "unused") continue;
    EXPECT_TRUE(torch::allclose(net->named_parameters()[item.key()].grad(), item.value().grad(),
                                1e-5, 1e-6))
        << item.key();
  }
}

// The DP engine's path: gradients computed outside autograd's .grad, handed in per parameter in
// a rank-dependent order, with something (noise) added on rank 0 only before the SUM.
TEST(GradientSync, MarkReadyInAnyOrderWithRankZeroAddition) {
  auto comm = make_comm();
  const int64_t global_batch = 10;
  torch::manual_seed(11);
  Net net;
  broadcast_parameters(*comm, *net);
  torch::manual_seed(12);
  const torch::Tensor x = torch::randn({global_batch, 1, 6, 6});
  const torch::Tensor y = torch::randint(0, 5, {global_batch});

  GradientSyncOptions options;
  options.first_bucket_bytes = 128;
  options.bucket_bytes = 1024;
  options.use_hooks = false;
  GradientSync sync(*comm, net->named_parameters(), options);
  std::vector<torch::Tensor> params;
  for (size_t i = 0; i < sync.num_parameters(); ++i) {
    params.push_back(net->named_parameters()[sync.name(i)]);
  }
  // Reference: the full-batch summed gradient, plus the rank-0 addition, over the normaliser.
  std::vector<torch::Tensor> noise;
  torch::manual_seed(13);
  for (const torch::Tensor& p : params) noise.push_back(torch::randn_like(p));
  const auto full = torch::autograd::grad({summed_loss(net, x, y)}, params, {}, false, false, true);

  const auto [begin, end] = slice(global_batch, comm->rank(), comm->size());
  const auto local =
      torch::autograd::grad({summed_loss(net, x.slice(0, begin, end), y.slice(0, begin, end))},
                            params, {}, false, false, true);
  std::vector<size_t> order(params.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(comm->rank()));
  for (size_t i : order) {
    torch::Tensor g = local[i].defined() ? local[i] : torch::zeros_like(params[i]);
    if (comm->rank() == 0) g = g + noise[i];
    sync.mark_ready(i, g);
  }
  sync.finish(static_cast<double>(global_batch));
  for (size_t i = 0; i < params.size(); ++i) {
    const torch::Tensor f = full[i].defined() ? full[i] : torch::zeros_like(params[i]);
    EXPECT_TRUE(torch::allclose(params[i].grad(), (f + noise[i]) / global_batch, 1e-5, 1e-6))
        << sync.name(i);
  }
}

}  // namespace
}  // namespace umbra
