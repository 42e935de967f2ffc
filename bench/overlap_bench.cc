// Share of the gradient all-reduce hidden by the bucketed, hook-driven overlap in a real training
// step (issue 5, benchmark (b)).
//
//   mpirun -np 2 build/bench/overlap_bench [--config configs/fmnist.yaml] [--stages ae,unet]
//                 [--batch-per-rank N] [--steps 10] [--warmup 1] [--threads 1]
//                 [--bucket-mb X] [--first-bucket-mb Y]
//
// Each rank runs StageRunner's non-private step (trainer/stage_runner.cc) on the stage's real
// model and loss (trainer/stage_task.h, sizes from --config): zero_grad, forward, backward of the
// summed loss, gradient sync, clipping, AdamW. Two modes alternate step by step (ABBA), each step
// starting after a barrier:
//   no overlap  the GradientSync's hooks are off; after backward every gradient is handed in
//               (mark_ready, in reverse registration order, as backward produces them) and
//               finish() waits for the same buckets: their all-reduce is not hidden at all
//   overlap     the hooks fill the buckets during backward and each bucket's all-reduce starts as
//               soon as it is complete (what the trainer does); finish() waits for what is left
// "wait" is GradientSync::last_wait_seconds() (time finish() blocks on the all-reduces), and
//   share hidden = 1 - wait(overlap) / wait(no overlap).
// Also printed: the backward time of each mode (the hooks' copies and the communication thread
// compete with it for the cores), the time from the end of backward to the end of finish(), and
// the same buckets all-reduced back to back after a barrier with nothing else running (the pure
// transfer time; the no-overlap wait also contains the wait for the slower rank).
// Figures: per step the mean over ranks, then the median over steps. Bucket sizes default to the
// config's comm.bucket_mb / comm.first_bucket_mb; the batch per rank to the stage's batch_size /
// ranks.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "comm/gradient_sync.h"
#include "comm/mpi_communicator.h"
#include "comm/mpi_session.h"
#include "comm/parameter_broadcast.h"
#include "trainer/optimizer.h"
#include "trainer/sample_random.h"
#include "trainer/stage_task.h"
#include "trainer/train_config.h"

namespace {

using namespace umbra;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string config = std::string(UMBRA_SOURCE_DIR) + "/configs/fmnist.yaml";
  std::vector<std::string> stages = {"ae", "unet"};
  int64_t batch_per_rank = 0;  // 0: the stage's batch_size / ranks
  int steps = 10;
  int warmup = 1;
  int threads = 1;
  double bucket_mb = 0;  // 0: the config's
  double first_bucket_mb = 0;
};

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: mpirun -np 2 overlap_bench [--config FILE] [--stages ae,unet] "
               "[--batch-per-rank N] [--steps N] [--warmup N] [--threads N] [--bucket-mb X] "
               "[--first-bucket-mb Y]\n");
  std::exit(code);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--help" || key == "-h") usage(0);
    if (i + 1 >= argc) {
      std::fprintf(stderr, "overlap_bench: %s needs a value\n", key.c_str());
      usage(2);
    }
    const std::string value = argv[++i];
    if (key == "--config") {
      a.config = value;
    } else if (key == "--stages") {
      a.stages.clear();
      std::stringstream in(value);
      for (std::string s; std::getline(in, s, ',');) a.stages.push_back(s);
    } else if (key == "--batch-per-rank") {
      a.batch_per_rank = std::stoll(value);
    } else if (key == "--steps") {
      a.steps = std::stoi(value);
    } else if (key == "--warmup") {
      a.warmup = std::stoi(value);
    } else if (key == "--threads") {
      a.threads = std::stoi(value);
    } else if (key == "--bucket-mb") {
      a.bucket_mb = std::stod(value);
    } else if (key == "--first-bucket-mb") {
      a.first_bucket_mb = std::stod(value);
    } else {
      std::fprintf(stderr, "overlap_bench: unknown option '%s'\n", key.c_str());
      usage(2);
    }
  }
  for (const auto& s : a.stages) {
    if (s != "ae" && s != "unet") {
      std::fprintf(stderr, "overlap_bench: --stages: unknown stage '%s' (ae, unet)\n", s.c_str());
      std::exit(2);
    }
  }
  if (a.steps < 1 || a.warmup < 0 || a.threads < 1 || a.batch_per_rank < 0) {
    std::fprintf(stderr, "overlap_bench: --steps, --threads must be >= 1\n");
    std::exit(2);
  }
  return a;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// This rank's part of a fixed random batch (distinct sample ids per rank).
Batch make_batch(const TrainConfig& cfg, bool ae, int64_t b, int rank) {
  torch::manual_seed(1234 + rank);
  Batch batch;
  const auto& o = cfg.autoencoder.model;
  if (ae) {
    batch.images = torch::rand({b, o.in_channels, o.image_size, o.image_size}) * 2 - 1;
  } else {
    batch.images = torch::randn({b, o.z_channels, o.latent_size(), o.latent_size()});
  }
  batch.labels = torch::randint(0, std::max<int64_t>(1, cfg.prior.model.num_classes), {b});
  batch.ids = torch::arange(b, torch::kLong) + rank * b;
  return batch;
}

// One step's timings on this rank, seconds.
struct StepTimes {
  double backward = 0, after = 0, wait = 0, step = 0, alone = 0;
};

// Element-wise mean over ranks.
StepTimes mean_over_ranks(StepTimes t, MPI_Comm comm, int size) {
  double v[5] = {t.backward, t.after, t.wait, t.step, t.alone};
  MPI_Allreduce(MPI_IN_PLACE, v, 5, MPI_DOUBLE, MPI_SUM, comm);
  return {v[0] / size, v[1] / size, v[2] / size, v[3] / size, v[4] / size};
}

void run_stage(const Args& args, const TrainConfig& cfg, bool ae, MpiCommunicator& comm,
               MPI_Comm raw) {
  const int rank = comm.rank(), size = comm.size();
  const StageTrainOptions& train = ae ? cfg.autoencoder.train : cfg.prior.train;
  const int64_t b =
      args.batch_per_rank > 0 ? args.batch_per_rank : std::max<int64_t>(1, train.batch_size / size);
  std::unique_ptr<StageTask> task;
  if (ae) {
    task = std::make_unique<AutoencoderTask>(cfg, nullptr);
  } else {
    task = std::make_unique<PriorTask>(cfg, Autoencoder(cfg.autoencoder.model), 1.0);
  }
  torch::nn::Module& model = task->module();
  model.train();
  broadcast_parameters(comm, model);
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& kv : model.named_parameters(true)) {
    if (kv.value().requires_grad()) params.emplace_back(kv.key(), kv.value());
  }
  Optimizer optimizer(params, train.optimizer);
  GradientSyncOptions sync_options = GradientSyncOptions::from(cfg.comm);
  if (args.bucket_mb > 0)
    sync_options.bucket_bytes = static_cast<int64_t>(args.bucket_mb * (1 << 20));
  if (args.first_bucket_mb > 0) {
    sync_options.first_bucket_bytes = static_cast<int64_t>(args.first_bucket_mb * (1 << 20));
  }
  GradientSyncOptions manual_options = sync_options;
  manual_options.use_hooks = false;
  GradientSync hooked(comm, params, sync_options);
  GradientSync manual(comm, params, manual_options);
  // Buffers of the bucket sizes for the back-to-back all-reduce of the same bytes.
  std::vector<torch::Tensor> bucket_buffers;
  for (const GradientBucket& bucket : hooked.buckets()) {
    bucket_buffers.push_back(torch::ones({bucket.numel}));
  }
  const Batch batch = make_batch(cfg, ae, b, rank);
  const double global_batch = static_cast<double>(b * size);
  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);

  auto step = [&](int64_t index, bool overlap) {
    StepTimes t;
    MPI_Barrier(raw);
    const auto start = Clock::now();
    comm.set_step(index);
    torch::manual_seed(step_seed(seed, RngStream::kDropout, index, rank));
    hooked.set_enabled(overlap);
    optimizer.zero_grad();
    const torch::Tensor loss = task->per_sample_loss(batch, index, 1).sum();
    auto t0 = Clock::now();
    loss.backward();
    t.backward = seconds_since(t0);
    t0 = Clock::now();
    GradientSync& sync = overlap ? hooked : manual;
    if (!overlap) {
      for (size_t i = params.size(); i-- > 0;) {
        const torch::Tensor& g = params[i].second.grad();
        if (g.defined()) manual.mark_ready(i, g);
      }
    }
    sync.finish(global_batch);
    t.after = seconds_since(t0);
    t.wait = sync.last_wait_seconds();
    clip_global_norm(params, train.grad_clip);
    optimizer.step(learning_rate(train.optimizer, index, train.max_steps));
    t.step = seconds_since(start);
    // The same buckets with nothing else running.
    for (auto& buffer : bucket_buffers) buffer.fill_(1.0f);
    MPI_Barrier(raw);
    t0 = Clock::now();
    for (auto& buffer : bucket_buffers) comm.all_reduce_sum(buffer, "overlap_bench bucket");
    t.alone = seconds_since(t0);
    return mean_over_ranks(t, raw, size);
  };

  std::vector<StepTimes> off, on;
  int64_t index = 0;
  for (int s = 0; s < args.warmup + args.steps; ++s) {
    const bool overlap_first = s % 2 == 1;  // ABBA
    const StepTimes a = step(index++, overlap_first);
    const StepTimes c = step(index++, !overlap_first);
    if (s < args.warmup) continue;
    off.push_back(overlap_first ? c : a);
    on.push_back(overlap_first ? a : c);
  }
  hooked.set_enabled(true);
  if (rank != 0) return;

  auto med = [](const std::vector<StepTimes>& v, double StepTimes::*f) {
    std::vector<double> x;
    for (const auto& t : v) x.push_back(1e3 * (t.*f));
    return median(x);
  };
  int64_t numel = 0;
  std::string sizes;
  for (const GradientBucket& bucket : hooked.buckets()) {
    numel += bucket.numel;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.2f", sizes.empty() ? "" : " + ",
                  bucket.numel * 4.0 / (1 << 20));
    sizes += buf;
  }
  std::printf(
      "\n=== %s: %.2f M parameters, %.2f MiB of float32 gradients in %zu buckets (%s MiB; "
      "bucket_mb %.3g, first_bucket_mb %.3g), %lld images per rank, %d ranks x %d threads, "
      "%d steps per mode\n",
      ae ? "autoencoder" : "UNet prior", static_cast<double>(numel) / 1e6, numel * 4.0 / (1 << 20),
      hooked.buckets().size(), sizes.c_str(), sync_options.bucket_bytes / double(1 << 20),
      sync_options.first_bucket_bytes / double(1 << 20), static_cast<long long>(b), size,
      args.threads, args.steps);
  std::printf(
      "| mode | backward ms | end of backward -> grads ready ms | all-reduce wait ms | step ms "
      "|\n|---|---|---|---|---|\n");
  std::printf("| no overlap (hooks off, buckets after backward) | %.1f | %.1f | %.1f | %.1f |\n",
              med(off, &StepTimes::backward), med(off, &StepTimes::after),
              med(off, &StepTimes::wait), med(off, &StepTimes::step));
  std::printf("| overlap (hooks, the trainer's path) | %.1f | %.1f | %.1f | %.1f |\n",
              med(on, &StepTimes::backward), med(on, &StepTimes::after), med(on, &StepTimes::wait),
              med(on, &StepTimes::step));
  std::vector<StepTimes> all = off;
  all.insert(all.end(), on.begin(), on.end());
  const double wait_off = med(off, &StepTimes::wait), wait_on = med(on, &StepTimes::wait);
  std::printf("same buckets all-reduced back to back, nothing else running: %.1f ms\n",
              med(all, &StepTimes::alone));
  std::printf("share of the all-reduce wait hidden by overlap: 1 - %.1f / %.1f = %.1f%%\n", wait_on,
              wait_off, 100.0 * (1.0 - wait_on / wait_off));
  const double net_off = med(off, &StepTimes::backward) + med(off, &StepTimes::after);
  const double net_on = med(on, &StepTimes::backward) + med(on, &StepTimes::after);
  std::printf(
      "backward + sync: %.1f ms without overlap, %.1f ms with (%+.1f ms, %+.1f%% of the "
      "no-overlap step)\n",
      net_off, net_on, net_on - net_off, 100.0 * (net_on - net_off) / med(off, &StepTimes::step));
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession session(&argc, &argv);
  const Args args = parse(argc, argv);
  TrainConfig cfg;
  try {
    cfg = load_train_config(args.config, {});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "overlap_bench: %s\n", e.what());
    return 1;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  torch::set_num_threads(args.threads);
  MPI_Comm raw;
  MPI_Comm_dup(MPI_COMM_WORLD, &raw);
  {
    MpiCommunicator comm(MPI_COMM_WORLD, cfg.comm);
    if (comm.rank() == 0) {
      std::printf("overlap_bench: %s, LibTorch %s, %d ranks\n", args.config.c_str(), TORCH_VERSION,
                  comm.size());
    }
    for (const auto& s : args.stages) run_stage(args, cfg, s == "ae", comm, raw);
  }
  MPI_Comm_free(&raw);
  return 0;
}
