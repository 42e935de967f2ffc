// Metrics overhead on real training steps (DESIGN.md §10 target: <= 1% of a step): the same
// short train() of a config, in this one process, with monitoring.enabled true (MetricRegistry,
// every step's 11 updates and 6 phase timers, an exporter serving /metrics that a background
// thread scrapes once a second -- 5x more often than monitoring/prometheus/prometheus.yml) and
// false (NullMetrics: every update is a no-op, no exporter). Runs come in pairs, the order
// alternating (on/off, off/on, ...) so drift on a shared machine falls on both sides.
//
//   build/bench/training_metrics_bench DATA [reps=6] [steps=300] [config=configs/tiny_test.yaml]
//   (reps = 0: only the interleaved part below)
//
// DATA is a packed dataset (`umbra pack`). Two figures per run:
//  - wall ms/step per stage: the median over its metrics.jsonl windows (log_every = 20 steps each,
//    the first dropped as warm-up) of batch_size / images_per_s. A window holds only training
//    steps: evaluation and the checkpoint come after the last one.
//  - CPU ms/step: CPU time of the training thread (CLOCK_THREAD_CPUTIME_ID; LibTorch runs the
//    ops on it with threads: 1) over the whole train() call divided by the steps taken. The work
//    is identical with metrics on and off, so the difference is what metrics cost the training
//    thread, and CPU time hardly moves when other processes compete for the cores (wall does).
// The figures are the medians over pairs of (on / off - 1).
//
// Whole runs on a shared machine differ by more than 1% from load alone, so a second part
// interleaves finely inside one loop: the autoencoder step of the stage runner (same model and
// batch as the config, AdamW, global-norm clipping, the six PhaseTimers and the per-step metric
// updates of trainer/stage_runner.cc) step by step, ABBA-ordered (on off off on ...), with a live
// exporter scraped once a second during the "on" blocks' whole loop. Per-step wall and thread-CPU
// times; figures = median(on) / median(off) - 1 and the same for the 10th percentiles (the steps
// nothing preempted: the better estimate on a loaded machine). `steps` sets this loop's steps per
// mode too.
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator_factory.h"
#include "core/check.h"
#include "core/log.h"
#include "models/autoencoder.h"
#include "monitoring/file_sd.h"
#include "monitoring/jsonl_log.h"
#include "monitoring/prometheus_exporter.h"
#include "monitoring/training_metrics.h"
#include "tests/monitoring/http_get.h"
#include "trainer/trainer.h"

namespace fs = std::filesystem;

namespace {

constexpr int64_t kLogEvery = 20;

double median(std::vector<double> v) {
  UMBRA_ASSERT(!v.empty(), "median of nothing");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The q-quantile (nearest rank): on a loaded machine the fast steps are the ones nothing
// preempted, so a low percentile estimates the undisturbed step.
double percentile(std::vector<double> v, double q) {
  UMBRA_ASSERT(!v.empty(), "percentile of nothing");
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

// Scrapes every target of a file_sd file once a second until stopped, as Prometheus would.
class Scraper {
 public:
  explicit Scraper(std::string target_file)
      : thread_([this, path = std::move(target_file)] { loop(path); }) {}
  ~Scraper() {
    stop_ = true;
    thread_.join();
  }
  int scrapes() const { return scrapes_; }

 private:
  void loop(const std::string& path) {
    while (!stop_) {
      try {
        if (fs::exists(path)) {
          std::ifstream in(path);
          for (const auto& group : nlohmann::json::parse(in)) {
            const std::string address = group["targets"][0];
            const int port = std::stoi(address.substr(address.rfind(':') + 1));
            if (umbra::test::http_get("127.0.0.1", port, "/metrics", 2.0).status == 200) ++scrapes_;
          }
        }
      } catch (const std::exception&) {  // the file is replaced atomically; retry next second
      }
      for (int i = 0; i < 10 && !stop_; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::atomic<bool> stop_{false};
  std::atomic<int> scrapes_{0};
  std::thread thread_;
};

struct RunFigures {
  std::map<std::string, double> step_ms;  // stage -> median wall ms per step
  double cpu_ms_per_step = 0;             // training thread, whole train() call
  int scrapes = 0;
};

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

RunFigures run_once(const std::string& config, const std::string& data, const std::string& runs,
                    const std::string& name, int64_t steps, bool metrics_on) {
  const std::vector<std::string> overrides = {
      "data.path=" + data,
      "run.dir=" + runs,
      "run.name=" + name,
      "autoencoder.max_steps=" + std::to_string(steps),
      "prior.max_steps=" + std::to_string(steps),
      "autoencoder.log_every=" + std::to_string(kLogEvery),
      "prior.log_every=" + std::to_string(kLogEvery),
      "autoencoder.eval_every=0",
      "prior.eval_every=0",
      "checkpoint.every_steps=1000000",
      "monitoring.enabled=" + std::string(metrics_on ? "true" : "false"),
      "monitoring.port_base=0",
      "monitoring.jsonl=true"};
  const umbra::TrainConfig cfg = umbra::load_train_config(config, overrides);
  if (cfg.threads > 0) torch::set_num_threads(static_cast<int>(cfg.threads));
  auto comm = umbra::make_communicator(cfg.comm, torch::kCPU);
  RunFigures figures;
  {
    std::unique_ptr<Scraper> scraper;
    if (metrics_on) scraper = std::make_unique<Scraper>(umbra::file_sd_path(runs, name));
    const double cpu0 = thread_cpu_seconds();
    umbra::train(cfg, *comm);
    const double cpu = thread_cpu_seconds() - cpu0;
    const int64_t total_steps = (cfg.stage == "both" ? 2 : 1) * steps;
    figures.cpu_ms_per_step = 1e3 * cpu / static_cast<double>(total_steps);
    if (scraper) figures.scrapes = scraper->scrapes();
  }
  std::map<std::string, std::vector<double>> windows;
  for (const umbra::StepRecord& r : umbra::read_jsonl_log(runs + "/" + name + "/metrics.jsonl")) {
    const int64_t batch =
        r.stage == "prior" ? cfg.prior.train.batch_size : cfg.autoencoder.train.batch_size;
    // Drop the first window (warm-up) and a short last one.
    if (r.step <= kLogEvery || r.step % kLogEvery != 0) continue;
    windows[r.stage].push_back(1e3 * static_cast<double>(batch) / r.images_per_s);
  }
  for (const auto& [stage, ms] : windows) figures.step_ms[stage] = median(ms);
  return figures;
}

// One step of the stage runner's non-private loop on a fixed batch, with `m`'s metrics.
double step_once(umbra::AutoencoderImpl& model, torch::optim::AdamW& optimizer,
                 std::vector<torch::Tensor>& params, const torch::Tensor& images,
                 const torch::Tensor& noise, const umbra::TrainingMetrics& m) {
  using umbra::PhaseTimer;
  using umbra::StepPhase;
  PhaseTimer data_timer(m.phase(StepPhase::kData));
  const torch::Tensor x = images.clone();
  data_timer.stop();
  optimizer.zero_grad();
  PhaseTimer forward_timer(m.phase(StepPhase::kForward));
  const torch::Tensor loss_sum = model.forward(x, noise).loss.sum();
  forward_timer.stop();
  PhaseTimer backward_timer(m.phase(StepPhase::kBackward));
  loss_sum.backward();
  backward_timer.stop();
  PhaseTimer allreduce_timer(m.phase(StepPhase::kAllreduce));
  const double loss = loss_sum.item<double>() / static_cast<double>(images.size(0));
  allreduce_timer.stop();
  PhaseTimer clip_timer(m.phase(StepPhase::kClip));
  const double grad_norm = torch::nn::utils::clip_grad_norm_(params, 1.0);
  clip_timer.stop();
  PhaseTimer optimizer_timer(m.phase(StepPhase::kOptimizer));
  optimizer.step();
  optimizer_timer.stop();
  m.steps.inc();
  m.samples.inc(static_cast<double>(images.size(0)));
  m.data_stall_seconds.inc(0.0);
  m.loss.set(loss);
  m.learning_rate.set(1e-3);
  m.grad_norm.set(grad_norm);
  m.images_per_second.set(1.0);
  return loss;
}

void interleaved(const std::string& config, const std::string& data, const std::string& runs,
                 int64_t steps_per_mode) {
  const umbra::TrainConfig cfg = umbra::load_train_config(config, {"data.path=" + data});
  if (cfg.threads > 0) torch::set_num_threads(static_cast<int>(cfg.threads));
  torch::manual_seed(1);
  umbra::Autoencoder model(cfg.autoencoder.model);
  std::vector<torch::Tensor> params = model->parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-3));
  const int64_t batch = cfg.autoencoder.train.batch_size;
  const auto& mo = cfg.autoencoder.model;
  const torch::Tensor images =
      torch::rand({batch, mo.in_channels, mo.image_size, mo.image_size}) * 2 - 1;
  std::vector<int64_t> noise_shape{batch};
  for (int64_t d : model->latent_shape()) noise_shape.push_back(d);
  const torch::Tensor noise = torch::randn(noise_shape);

  auto registry = std::make_shared<umbra::MetricRegistry>();
  umbra::MonitoringOptions options;
  options.port_base = 0;
  umbra::PrometheusExporter exporter(registry, options, 0);
  umbra::publish_build_info(*registry, 0, umbra::default_build_info("single"));
  const umbra::TrainingMetrics on(*registry, 0, "autoencoder");
  const umbra::TrainingMetrics off;
  const std::string targets = runs + "/interleaved_targets.json";
  fs::create_directories(runs);
  umbra::write_file_sd(targets, {{exporter.address(), {{"rank", "0"}}}});
  Scraper scraper(targets);

  constexpr int kBlock = 1;
  for (int i = 0; i < 2 * kBlock; ++i) step_once(*model, optimizer, params, images, noise, off);
  std::map<bool, std::vector<double>> wall_ms, cpu_ms;
  const int64_t blocks = std::max<int64_t>(2, steps_per_mode / kBlock);
  for (int64_t b = 0; b < 2 * blocks; ++b) {
    const bool metrics_on = (b % 4 == 0) || (b % 4 == 3);  // ABBA: on off off on ...
    for (int i = 0; i < kBlock; ++i) {
      const double cpu0 = thread_cpu_seconds();
      const auto t0 = std::chrono::steady_clock::now();
      step_once(*model, optimizer, params, images, noise, metrics_on ? on : off);
      wall_ms[metrics_on].push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      cpu_ms[metrics_on].push_back(1e3 * (thread_cpu_seconds() - cpu0));
    }
  }
  std::printf(
      "\ninterleaved autoencoder steps (batch %lld, blocks of %d, ABBA), %zu steps per "
      "mode, %d scrapes:\n",
      static_cast<long long>(batch), kBlock, wall_ms[true].size(), scraper.scrapes());
  for (const auto& [what, ms] : {std::pair{"wall", &wall_ms}, std::pair{"CPU", &cpu_ms}}) {
    const double off_median = median((*ms)[false]);
    const double on_median = median((*ms)[true]);
    const double off_p10 = percentile((*ms)[false], 0.1);
    const double on_p10 = percentile((*ms)[true], 0.1);
    std::printf(
        "  %-4s median off %.3f, on %.3f ms/step: %+.2f%%; 10th percentile off %.3f, on "
        "%.3f ms/step: %+.2f%%\n",
        what, off_median, on_median, 100 * (on_median / off_median - 1), off_p10, on_p10,
        100 * (on_p10 / off_p10 - 1));
  }
  std::printf("  exporter: umbra_steps_total = %g after the loop\n", on.steps.value());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DATA [reps=6] [steps=300] [config=%s/configs/tiny_test.yaml]\n",
                 argv[0], UMBRA_SOURCE_DIR);
    return 2;
  }
  const std::string data = argv[1];
  const int reps = argc > 2 ? std::atoi(argv[2]) : 6;
  const int64_t steps = argc > 3 ? std::atoll(argv[3]) : 300;
  const std::string config =
      argc > 4 ? argv[4] : std::string(UMBRA_SOURCE_DIR) + "/configs/tiny_test.yaml";
  if (reps < 0 || steps < 3 * kLogEvery) {
    std::fprintf(stderr, "reps >= 1 and steps >= %lld, please\n",
                 static_cast<long long>(3 * kLogEvery));
    return 2;
  }
  const std::string runs =
      (fs::temp_directory_path() / ("umbra_metrics_bench_" + std::to_string(getpid()))).string();
  try {
    umbra::init_logging(0);
    spdlog::set_level(spdlog::level::warn);
    std::printf("metrics on vs off, %s, %lld steps per stage, %d pairs\n", config.c_str(),
                static_cast<long long>(steps), reps);
    std::printf("%4s %-14s %12s %12s %9s %8s\n", "pair", "figure", "off ms/step", "on ms/step",
                "on/off-1", "scrapes");
    std::map<std::string, std::vector<double>> ratios, off_ms, on_ms;
    auto add = [&](int rep, const std::string& what, double off, double on, int scrapes) {
      ratios[what].push_back(on / off - 1);
      off_ms[what].push_back(off);
      on_ms[what].push_back(on);
      std::printf("%4d %-14s %12.3f %12.3f %+8.2f%% %8d\n", rep, what.c_str(), off, on,
                  100 * (on / off - 1), scrapes);
    };
    for (int rep = 0; rep < reps; ++rep) {
      std::map<bool, RunFigures> figures;
      for (int k = 0; k < 2; ++k) {
        const bool on = (rep + k) % 2 == 0;  // on first in even pairs, off first in odd ones
        figures[on] = run_once(config, data, runs,
                               "r" + std::to_string(rep) + (on ? "_on" : "_off"), steps, on);
      }
      const int scrapes = figures[true].scrapes;
      for (const auto& [stage, off] : figures[false].step_ms)
        add(rep, "wall " + stage, off, figures[true].step_ms.at(stage), scrapes);
      add(rep, "CPU all steps", figures[false].cpu_ms_per_step, figures[true].cpu_ms_per_step,
          scrapes);
      std::fflush(stdout);
    }
    if (reps > 0) std::printf("\nmedian over %d pairs:\n", reps);
    for (const auto& [stage, r] : ratios) {
      std::printf(
          "  %-12s off %.3f ms/step, on %.3f ms/step, overhead %+.2f%% (pairs: %+.2f%% .. "
          "%+.2f%%)\n",
          stage.c_str(), median(off_ms[stage]), median(on_ms[stage]), 100 * median(r),
          100 * *std::min_element(r.begin(), r.end()), 100 * *std::max_element(r.begin(), r.end()));
    }
    interleaved(config, data, runs, steps * 2);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "training_metrics_bench: %s\n", e.what());
    fs::remove_all(runs);
    return 1;
  }
  fs::remove_all(runs);
  return 0;
}
