// comm/ in one process: the single backend, the backend choice, bucket layout, gradient sync
// with one rank against plain autograd, and the message helpers.
#include <gtest/gtest.h>

#include <set>

#include "comm/communicator_factory.h"
#include "comm/gradient_sync.h"
#include "comm/parameter_broadcast.h"
#include "comm/single_communicator.h"
#include "core/check.h"

namespace umbra {
namespace {

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SingleCommunicator, CollectivesAreTheIdentity) {
  SingleCommunicator comm;
  EXPECT_EQ(comm.size(), 1);
  torch::Tensor t = torch::arange(6, torch::kFloat32).view({2, 3});
  const torch::Tensor before = t.clone();
  comm.all_reduce_sum(t);
  comm.broadcast(t, 0);
  EXPECT_TRUE(torch::equal(t, before));
  const torch::Tensor gathered = comm.all_gather(t);
  EXPECT_EQ(gathered.sizes(), torch::IntArrayRef({1, 2, 3}));
  EXPECT_TRUE(torch::equal(gathered[0], before));
  EXPECT_EQ(comm.all_reduce_sum(2.5), 2.5);
  EXPECT_EQ(comm.all_reduce_sum(int64_t{7}), 7);
  EXPECT_EQ(comm.all_gather_strings("abc"), std::vector<std::string>{"abc"});
  comm.check_same_on_all_ranks("config hash", "abc");
  EXPECT_TRUE(comm.all_reduce_async(t, ReduceOp::kMax)->is_completed());
  EXPECT_NE(error_of([&] { comm.broadcast(t, 1); }).find("root 1"), std::string::npos);
}

TEST(CommunicatorFactory, OneProcessIsSingleWithoutMpi) {
  CommOptions options;
  EXPECT_EQ(make_communicator(options, torch::kCPU)->backend(), "single");
  options.backend = "mpi";
  EXPECT_NE(error_of([&] {
              make_communicator(options, torch::kCPU);
            }).find("comm.backend=mpi needs MPI: create an umbra::MpiSession"),
            std::string::npos);
}

TEST(Messages, FormatRanks) {
  EXPECT_EQ(format_ranks({}), "");
  EXPECT_EQ(format_ranks({3}), "3");
  EXPECT_EQ(format_ranks({7, 0, 1, 2, 5, 3, 7}), "0-3, 5, 7");
}

TEST(Messages, DescribeDifferences) {
  EXPECT_EQ(describe_differences("config hash", {"a", "a", "a"}), "");
  EXPECT_EQ(describe_differences("config hash", {"a", "b", "a"}),
            "config hash differs across ranks: ranks 0, 2 have 'a'; rank 1 has 'b'");
  EXPECT_EQ(describe_differences("x", {"a", "b", "b", "b", "c"}),
            "x differs across ranks: rank 0 has 'a'; ranks 1-3 have 'b'; rank 4 has 'c'");
}

TEST(Messages, FirstDifference) {
  const std::vector<std::string> rank0{"fc.weight Float [16, 8]", "fc.bias Float [16]"};
  EXPECT_EQ(first_difference(rank0, 1, rank0), "");
  EXPECT_EQ(first_difference(rank0, 2, {"fc.weight Float [16, 9]", "fc.bias Float [16]"}),
            "'fc.weight' is Float [16, 9] on rank 2 but Float [16, 8] on rank 0");
  EXPECT_EQ(first_difference(rank0, 1, {"fc.weight Float [16, 8]"}),
            "rank 1 has 1 entries, rank 0 has 2; the first missing on rank 1 is 'fc.bias' Float "
            "[16]");
  EXPECT_EQ(first_difference(rank0, 1, {"fc.w Float [16, 8]", "fc.bias Float [16]"}),
            "entry #0 is 'fc.w' Float [16, 8] on rank 1 but 'fc.weight' Float [16, 8] on rank 0");
}

TEST(BucketPlan, ReverseOrderSmallFirstBucketOneDtypePerBucket) {
  // 4-byte floats: 100 elements = 400 bytes.
  std::vector<torch::Tensor> params{
      torch::zeros({100}), torch::zeros({100}), torch::zeros({50}, torch::kFloat64),
      torch::zeros({30}),  torch::zeros({300}), torch::zeros({10}),
  };
  const auto buckets = plan_gradient_buckets(params, /*first=*/500, /*bucket=*/1000);
  // Reverse order: 5 (40 B) + 4 (1200 B > 500) -> first bucket {5}; 4 alone (larger than a
  // bucket); 3 (120 B) then 2 is float64 -> {3}; {2}; 1 + 0 = 800 B -> {1, 0}.
  ASSERT_EQ(buckets.size(), 5u);
  EXPECT_EQ(buckets[0].params, std::vector<size_t>({5}));
  EXPECT_EQ(buckets[1].params, std::vector<size_t>({4}));
  EXPECT_EQ(buckets[2].params, std::vector<size_t>({3}));
  EXPECT_EQ(buckets[3].params, std::vector<size_t>({2}));
  EXPECT_EQ(buckets[3].dtype, torch::kFloat64);
  EXPECT_EQ(buckets[4].params, std::vector<size_t>({1, 0}));
  EXPECT_EQ(buckets[4].offsets, std::vector<int64_t>({0, 100}));
  EXPECT_EQ(buckets[4].numel, 200);
  // Every parameter exactly once.
  std::multiset<size_t> seen;
  for (const auto& b : buckets) seen.insert(b.params.begin(), b.params.end());
  EXPECT_EQ(seen, std::multiset<size_t>({0, 1, 2, 3, 4, 5}));
}

struct TinyNet : torch::nn::Module {
  TinyNet() {
    fc1 = register_module("fc1", torch::nn::Linear(5, 7));
    fc2 = register_module("fc2", torch::nn::Linear(7, 3));
    unused = register_parameter("unused", torch::ones({2}));
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::tanh(fc1(x))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::Tensor unused;
};

TEST(GradientSyncSingle, EqualsAutogradOfTheMeanLoss) {
  torch::manual_seed(3);
  SingleCommunicator comm;
  auto net = std::make_shared<TinyNet>();
  auto reference = std::make_shared<TinyNet>();
  broadcast_parameters(comm, *net);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < net->parameters().size(); ++i) {
      reference->parameters()[i].copy_(net->parameters()[i]);
    }
  }
  const torch::Tensor x = torch::randn({9, 5});
  const torch::Tensor y = torch::randint(0, 3, {9});

  torch::nn::functional::cross_entropy(reference->forward(x), y).backward();

  GradientSyncOptions options;
  options.first_bucket_bytes = 16;
  options.bucket_bytes = 64;
  GradientSync sync(comm, net->named_parameters(), options);
  EXPECT_GT(sync.buckets().size(), 2u);
  torch::nn::functional::cross_entropy(
      net->forward(x), y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
      .backward();
  sync.finish(9.0);
  for (size_t i = 0; i < sync.num_parameters(); ++i) {
    const torch::Tensor got = net->named_parameters()[sync.name(i)].grad();
    const torch::Tensor want = reference->named_parameters()[sync.name(i)].grad();
    if (!want.defined()) {  // unused: zeros from the sync
      EXPECT_TRUE(torch::equal(got, torch::zeros_like(got))) << sync.name(i);
      continue;
    }
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6)) << sync.name(i);
  }
  EXPECT_NE(error_of([&] {
              sync.mark_ready(0, torch::zeros_like(net->parameters()[0]));
              sync.mark_ready(0, torch::zeros_like(net->parameters()[0]));
            }).find("received a second gradient before finish()"),
            std::string::npos);
}

}  // namespace
}  // namespace umbra
