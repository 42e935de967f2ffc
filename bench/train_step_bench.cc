// One non-private training step of the C++ trainer, timed per phase, for the side-by-side
// comparison with the Python PyTorch reference (issue 3 benchmark; the driver is
// bench/train_step_bench.sh, the Python side bench/reference/train_step.py).
//
//   train_step_bench [--config configs/fmnist.yaml] [--stage ae|unet] [--batch 64]
//                    [--threads 1] [--steps 5] [--warmup 1] [--rep 0] [--lockstep]
//                    [--profile TRACE.json]
//   train_step_bench [--config ...] --options-json FILE
//
// The step is StageRunner's non-private step on one rank (trainer/stage_runner.cc), built from
// the same pieces: the stage's StageTask (real model from the config, its per-sample loss with the
// per-sample random draws), backward of the summed loss with the GradientSync hooks of a
// single-rank communicator, finish(B) (gradient of the mean), global-norm clipping at grad_clip,
// AdamW (trainer/optimizer.h) and the EMA update. Data: a fixed random batch (images in [-1, 1],
// or N(0, 1) latents for the prior), so the loader is not part of the figure.
// Output: one JSON line per timed step (after --warmup untimed steps), milliseconds per phase:
//   {"side":"cpp","stage":"ae","batch":64,"threads":1,"rep":0,"total_ms":..,"phases":{..}}
// --lockstep (used by the driver to alternate with the Python side step by step): before each
// step read one line from stdin, print that step's line (warm-up included: "rep" is the step
// index) and stop at end of input; --steps and --warmup are ignored.
// --profile: the last step runs under LibTorch's profiler, written as a Chrome trace (compare
// per operator with train_step.py --profile).
// --options-json writes the resolved model and training options of both stages as JSON (the
// Python side builds the same models from it) and exits.
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "comm/gradient_sync.h"
#include "comm/single_communicator.h"
#include "trainer/optimizer.h"
#include "trainer/sample_random.h"
#include "trainer/stage_task.h"
#include "trainer/train_config.h"

namespace {

using namespace umbra;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string config = std::string(UMBRA_SOURCE_DIR) + "/configs/fmnist.yaml";
  std::string stage = "ae";
  int64_t batch = 64;
  int threads = 1;
  int steps = 5;
  int warmup = 1;
  int rep = 0;
  std::string options_json;
  bool lockstep = false;
  std::string profile;
};

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: train_step_bench [--config FILE] [--stage ae|unet] [--batch N] "
               "[--threads N] [--steps N] [--warmup N] [--rep N] [--lockstep] [--profile TRACE] "
               "[--options-json FILE]\n");
  std::exit(code);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--help" || key == "-h") usage(0);
    if (key == "--lockstep") {
      a.lockstep = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "train_step_bench: %s needs a value\n", key.c_str());
      usage(2);
    }
    const std::string value = argv[++i];
    if (key == "--config") {
      a.config = value;
    } else if (key == "--stage") {
      a.stage = value;
    } else if (key == "--batch") {
      a.batch = std::stoll(value);
    } else if (key == "--threads") {
      a.threads = std::stoi(value);
    } else if (key == "--steps") {
      a.steps = std::stoi(value);
    } else if (key == "--warmup") {
      a.warmup = std::stoi(value);
    } else if (key == "--rep") {
      a.rep = std::stoi(value);
    } else if (key == "--profile") {
      a.profile = value;
    } else if (key == "--options-json") {
      a.options_json = value;
    } else {
      std::fprintf(stderr, "train_step_bench: unknown option '%s'\n", key.c_str());
      usage(2);
    }
  }
  if (a.stage != "ae" && a.stage != "unet") {
    std::fprintf(stderr, "train_step_bench: --stage must be ae or unet, got '%s'\n",
                 a.stage.c_str());
    std::exit(2);
  }
  if (a.batch < 1 || a.threads < 1 || a.steps < 1 || a.warmup < 0) {
    std::fprintf(stderr, "train_step_bench: --batch, --threads, --steps must be >= 1\n");
    std::exit(2);
  }
  return a;
}

// Options struct -> JSON object with the config key names (sections nest).
struct JsonVisitor {
  nlohmann::json& out;
  template <class T, class... C>
  void operator()(const char* name, T& value, const char*, const C&...) {
    out[name] = value;
  }
  template <class S>
  void section(const char* name, S& sub) {
    nlohmann::json j = nlohmann::json::object();
    JsonVisitor v{j};
    sub.visit(v);
    out[name] = j;
  }
};

template <class Options>
nlohmann::json as_json(Options o) {
  nlohmann::json j = nlohmann::json::object();
  JsonVisitor v{j};
  o.visit(v);
  return j;
}

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// A fixed batch for the stage: images in [-1, 1] (autoencoder) or latents ~ N(0, 1) (prior).
Batch make_batch(const TrainConfig& cfg, const std::string& stage, int64_t b) {
  torch::manual_seed(1234);
  Batch batch;
  const auto& ae = cfg.autoencoder.model;
  if (stage == "ae") {
    batch.images = torch::rand({b, ae.in_channels, ae.image_size, ae.image_size}) * 2 - 1;
  } else {
    const int64_t s = ae.latent_size();
    batch.images = torch::randn({b, ae.z_channels, s, s});
  }
  const int64_t classes = std::max<int64_t>(1, cfg.prior.model.num_classes);
  batch.labels = torch::randint(0, classes, {b}, torch::kLong);
  batch.ids = torch::arange(b, torch::kLong);
  return batch;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  TrainConfig cfg;
  try {
    cfg = load_train_config(args.config, {});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_step_bench: %s\n", e.what());
    return 1;
  }
  if (!args.options_json.empty()) {
    const nlohmann::json j = {{"config", args.config},
                              {"autoencoder", as_json(cfg.autoencoder)},
                              {"prior", as_json(cfg.prior)},
                              {"seed", cfg.run.seed}};
    std::ofstream out(args.options_json);
    out << j.dump(1) << "\n";
    if (!out) {
      std::fprintf(stderr, "train_step_bench: cannot write %s\n", args.options_json.c_str());
      return 1;
    }
    return 0;
  }
  torch::set_num_threads(args.threads);

  const bool ae = args.stage == "ae";
  const StageTrainOptions& train = ae ? cfg.autoencoder.train : cfg.prior.train;
  std::unique_ptr<StageTask> task;
  if (ae) {
    task = std::make_unique<AutoencoderTask>(cfg, nullptr);
  } else {
    task = std::make_unique<PriorTask>(cfg, Autoencoder(cfg.autoencoder.model), 1.0);
  }
  torch::nn::Module& model = task->module();
  model.train();
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& kv : model.named_parameters(true)) {
    if (kv.value().requires_grad()) params.emplace_back(kv.key(), kv.value());
  }
  Optimizer optimizer(params, train.optimizer);
  Ema ema(params, train.ema_decay);
  SingleCommunicator comm;
  GradientSync sync(comm, params, GradientSyncOptions::from(cfg.comm));
  const Batch batch = make_batch(cfg, args.stage, args.batch);
  const double global_batch = static_cast<double>(args.batch);
  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);

  for (int step = 0; args.lockstep || step < args.warmup + args.steps; ++step) {
    if (args.lockstep) {
      char go[64];
      if (!std::fgets(go, sizeof go, stdin)) break;
    }
    std::unique_ptr<torch::autograd::profiler::RecordProfile> profiler;
    if (!args.profile.empty() && !args.lockstep && step + 1 == args.warmup + args.steps) {
      profiler = std::make_unique<torch::autograd::profiler::RecordProfile>(args.profile);
    }
    const auto start = Clock::now();
    torch::manual_seed(step_seed(seed, RngStream::kDropout, step, 0));
    optimizer.zero_grad();
    auto t = Clock::now();
    const torch::Tensor losses = task->per_sample_loss(batch, step, 1);
    const torch::Tensor loss_sum = losses.sum();
    const double forward = ms_since(t);
    t = Clock::now();
    loss_sum.backward();
    const double loss = loss_sum.item<double>() / global_batch;
    const double backward = ms_since(t);
    t = Clock::now();
    sync.finish(global_batch);
    const double finish = ms_since(t);
    t = Clock::now();
    clip_global_norm(params, train.grad_clip);
    const double clip = ms_since(t);
    t = Clock::now();
    optimizer.step(learning_rate(train.optimizer, step, train.max_steps));
    const double opt = ms_since(t);
    t = Clock::now();
    ema.update(params);
    const double ema_ms = ms_since(t);
    const double total = ms_since(start);
    profiler.reset();
    if (!std::isfinite(loss)) {
      std::fprintf(stderr, "train_step_bench: loss became %g at step %d\n", loss, step);
      return 1;
    }
    if (!args.lockstep && step < args.warmup) continue;
    const nlohmann::json line = {{"side", "cpp"},
                                 {"stage", args.stage},
                                 {"batch", args.batch},
                                 {"threads", args.threads},
                                 {"rep", args.lockstep ? step : args.rep},
                                 {"total_ms", total},
                                 {"loss", loss},
                                 {"phases",
                                  {{"forward", forward},
                                   {"backward", backward},
                                   {"sync", finish},
                                   {"clip", clip},
                                   {"optimizer", opt},
                                   {"ema", ema_ms}}}};
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}
