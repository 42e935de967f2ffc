// DP-SGD step cost: the private step (DP-mode forward, backward of the summed per-sample loss,
// per-sample norms, book-keeping clipped sum) against the non-private step (forward, backward of
// the mean loss) of the same model and batch, no optimizer in either (DESIGN.md §5 targets:
// time <= 1.25x, peak memory <= 1.2x), plus the slow exact reference (one backward per sample)
// for scale, and the per-layer ghost/direct plan.
//
//   dp_step_bench [--models ae,unet] [--batches 64,256] [--steps 5] [--threads 2]
//                 [--multiplicity 1] [--reference-samples 16] [--chunk-mb 8]
//                 [--no-memory | --memory-only] [--conv-loop | --no-pixel-gram]
//
// A second DP policy measured side by side, alternating with the others (timings and memory):
//   --conv-loop      Conv2d's per-sample gradients one sample at a time
//                    (NormPolicy::grouped_conv = false, the method before 2026-12-07);
//   --no-pixel-gram  no kGhostPixel for Conv2d (NormPolicy::pixel_gram = false, the choice
//                    before 2026-12-07).
//
// Models: the autoencoder and the UNet with their default options (models/*_options.h; the
// quickstart sizes: 28x28 images padded to 32, 8x8x4 latents). Times: median of --steps steps
// after one warm-up step, --threads intra-op threads. The reference is timed on
// --reference-samples samples and scaled linearly to the batch.
// Memory: peak resident set size of the process during one step (VmHWM after resetting it with
// /proc/self/clear_refs = 5), with glibc's mmap threshold fixed at 64 KiB so that freed tensor
// memory leaves the RSS (set only for the memory runs, after the timings). Reported as the peak
// above the RSS just before the step ("step peak": what the step itself needs) and as the whole
// process peak.
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "models/autoencoder.h"
#include "models/diffusion_loss.h"
#include "models/noise_schedule.h"
#include "models/unet.h"
#include "privacy/clipping.h"
#include "privacy/per_sample_reference.h"

namespace {

using namespace umbra;
using Clock = std::chrono::steady_clock;

struct Args {
  std::vector<std::string> models = {"ae", "unet"};
  std::vector<int64_t> batches = {64, 256};
  int steps = 5;
  int threads = 2;
  int64_t multiplicity = 1;
  int64_t reference_samples = 16;
  int64_t chunk_mb = NormPolicy{}.chunk_bytes >> 20;  // the engine's default
  bool memory = true;
  bool timing = true;
  // The second policy (empty: none) and its label.
  std::string compare;
};

// The policy measured beside the default one, per Args::compare.
NormPolicy compared_policy(const Args& args, NormPolicy policy) {
  if (args.compare == "conv-loop") policy.grouped_conv = false;
  if (args.compare == "no-pixel-gram") policy.pixel_gram = false;
  return policy;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "dp_step_bench: %s needs a value\n", key.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (key == "--models") {
      a.models = split(value());
    } else if (key == "--batches") {
      a.batches.clear();
      for (const auto& b : split(value())) a.batches.push_back(std::stoll(b));
    } else if (key == "--steps") {
      a.steps = std::stoi(value());
    } else if (key == "--threads") {
      a.threads = std::stoi(value());
    } else if (key == "--multiplicity") {
      a.multiplicity = std::stoll(value());
    } else if (key == "--reference-samples") {
      a.reference_samples = std::stoll(value());
    } else if (key == "--chunk-mb") {
      a.chunk_mb = std::stoll(value());
    } else if (key == "--conv-loop" || key == "--no-pixel-gram") {
      a.compare = key.substr(2);
    } else if (key == "--no-memory") {
      a.memory = false;
    } else if (key == "--memory-only") {
      a.timing = false;
    } else {
      std::fprintf(stderr,
                   "usage: dp_step_bench [--models ae,unet] [--batches 64,256] [--steps N] "
                   "[--threads N] [--multiplicity K] [--reference-samples N] [--chunk-mb N] "
                   "[--no-memory | --memory-only] [--conv-loop | --no-pixel-gram]\n");
      std::exit(key == "--help" ? 0 : 2);
    }
  }
  return a;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// VmRSS or VmHWM of this process in bytes.
double proc_status_bytes(const char* field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(std::strlen(field) + 1)) * 1024.0;
  }
  return 0.0;
}

void reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
}

// A model under test: rows of the current batch and their per-row losses.
struct Workload {
  std::string name;
  std::shared_ptr<torch::nn::Module> module;
  // Builds the batch of `samples` samples × K rows (deterministic in `seed`).
  std::function<void(int64_t samples, int64_t k, uint64_t seed)> make_batch;
  // Per-row losses of rows [begin, end) of the current batch.
  std::function<torch::Tensor(int64_t begin, int64_t end)> losses;
  int64_t rows = 0;
};

Workload autoencoder_workload() {
  auto model = std::make_shared<AutoencoderImpl>(AutoencoderOptions{});
  auto x = std::make_shared<torch::Tensor>(), noise = std::make_shared<torch::Tensor>();
  Workload w;
  w.name = "autoencoder";
  w.module = model;
  w.make_batch = [model, x, noise](int64_t samples, int64_t k, uint64_t seed) {
    torch::manual_seed(seed);
    const auto& o = model->options();
    *x = (torch::rand({samples, o.in_channels, o.image_size, o.image_size}) * 2 - 1)
             .repeat_interleave(k, 0);
    const auto shape = model->latent_shape();
    *noise = torch::randn({samples * k, shape[0], shape[1], shape[2]});
  };
  w.losses = [model, x, noise](int64_t b, int64_t e) {
    return model->forward(x->slice(0, b, e), noise->slice(0, b, e)).loss;
  };
  return w;
}

Workload unet_workload() {
  const PriorOptions options;
  const AutoencoderOptions ae;  // the latents the prior sees: z_channels x latent_size²
  auto model = std::make_shared<UNetImpl>(options, ae.z_channels);
  auto schedule = std::make_shared<NoiseSchedule>(NoiseSchedule::from_options(options));
  struct Batch {
    torch::Tensor x0, labels, t, noise;
  };
  auto batch = std::make_shared<Batch>();
  Workload w;
  w.name = "unet";
  w.module = model;
  w.make_batch = [batch, schedule, options, ae](int64_t samples, int64_t k, uint64_t seed) {
    at::Generator gen = at::detail::createCPUGenerator(seed);
    const int64_t s = ae.latent_size();
    batch->x0 = torch::randn({samples, ae.z_channels, s, s}, gen).repeat_interleave(k, 0);
    const torch::Tensor labels =
        torch::randint(0, options.num_classes, {samples}, gen, torch::kLong).repeat_interleave(k);
    const DiffusionInputs in = draw_diffusion_inputs(
        *schedule, batch->x0, labels, options.num_classes, options.class_dropout_prob, gen);
    batch->labels = in.labels;
    batch->t = in.t;
    batch->noise = in.noise;
  };
  w.losses = [model, schedule, batch](int64_t b, int64_t e) {
    return diffusion_loss(*model, *schedule, PredictionType::kEpsilon, batch->x0.slice(0, b, e),
                          batch->labels.slice(0, b, e), batch->t.slice(0, b, e),
                          batch->noise.slice(0, b, e));
  };
  return w;
}

void clear_grads(torch::nn::Module& m) {
  for (auto& p : m.parameters()) p.mutable_grad() = torch::Tensor();
}

struct StepTimes {
  double forward = 0, backward = 0, clip = 0;
  double total() const { return forward + backward + clip; }
};

StepTimes non_private_step(Workload& w, int64_t rows) {
  StepTimes t;
  clear_grads(*w.module);
  auto t0 = Clock::now();
  const torch::Tensor loss = w.losses(0, rows).mean();
  t.forward = seconds_since(t0);
  t0 = Clock::now();
  loss.backward();
  t.backward = seconds_since(t0);
  return t;
}

StepTimes dp_step(Workload& w, PerSampleClipper& clipper, int64_t samples, int64_t rows,
                  int64_t* clipped) {
  StepTimes t;
  clear_grads(*w.module);
  auto t0 = Clock::now();
  const torch::Tensor loss = w.losses(0, rows).sum();
  t.forward = seconds_since(t0);
  t0 = Clock::now();
  loss.backward();
  t.backward = seconds_since(t0);
  t0 = Clock::now();
  const ClipStats stats = clipper.clip_and_accumulate(samples);
  t.clip = seconds_since(t0);
  if (clipped) *clipped = stats.num_clipped;
  return t;
}

struct Peak {
  double step = 0, process = 0;
};

template <class F>
Peak measure_peak(F step) {
  malloc_trim(0);
  const double before = proc_status_bytes("VmRSS:");
  reset_peak_rss();
  step();
  const double hwm = proc_status_bytes("VmHWM:");
  return {hwm - before, hwm};
}

void run(Workload& w, const Args& args) {
  const int64_t k = args.multiplicity;
  ClippingOptions options;
  options.max_grad_norm = 1.0;
  options.noise_multiplicity = k;
  options.policy.chunk_bytes = args.chunk_mb << 20;
  int64_t params = 0;
  for (const auto& p : w.module->parameters()) params += p.numel();
  std::printf("\n=== %s: %.2f M parameters, K = %lld, %d threads\n", w.name.c_str(),
              static_cast<double>(params) / 1e6, static_cast<long long>(k), args.threads);
  for (int64_t batch : args.batches) {
    const int64_t rows = batch * k;
    w.make_batch(batch, k, 1234);
    // Non-private and DP steps alternate, so that a load change on a shared machine hits both.
    // A clipper owns the model's gradient callbacks while it lives: with a compared policy the
    // two clippers take turns, each built just before its step.
    std::optional<PerSampleClipper> clipper, other_clipper;
    ClippingOptions other_options = options;
    other_options.policy = compared_policy(args, options.policy);
    const bool compare = !args.compare.empty();
    std::vector<StepTimes> np, dp, dp_other;
    int64_t clipped = 0, other_clipped = 0;
    std::vector<LayerPlan> last_plan;  // of the last step of `clipper`
    for (int s = 0; s <= args.steps; ++s) {
      set_dp_mode(*w.module, false);
      const StepTimes a = non_private_step(w, rows);
      set_dp_mode(*w.module, true);
      other_clipper.reset();
      clipper.emplace(*w.module, options);
      const StepTimes b = dp_step(w, *clipper, batch, rows, &clipped);
      last_plan = clipper->last_plan();
      StepTimes c;
      if (compare) {
        clipper.reset();
        other_clipper.emplace(*w.module, other_options);
        c = dp_step(w, *other_clipper, batch, rows, &other_clipped);
      }
      if (s == 0) continue;  // warm-up
      np.push_back(a);
      dp.push_back(b);
      if (compare) dp_other.push_back(c);
    }
    auto med = [](const std::vector<StepTimes>& v, double StepTimes::*f) {
      std::vector<double> x;
      for (const auto& t : v) x.push_back(t.*f);
      return median(x);
    };
    auto totals = [](const std::vector<StepTimes>& v) {
      std::vector<double> x;
      for (const auto& t : v) x.push_back(t.total());
      return x;
    };
    const double t_np = median(totals(np)), t_dp = median(totals(dp));
    const auto min_of = [](const std::vector<double>& v) {
      return *std::min_element(v.begin(), v.end());
    };
    const double min_np = min_of(totals(np)), min_dp = min_of(totals(dp));
    std::printf("\n-- %s, batch %lld (%lld rows)\n", w.name.c_str(), static_cast<long long>(batch),
                static_cast<long long>(rows));
    std::printf("  non-private step   %8.3f s  (forward %.3f, backward %.3f)\n", t_np,
                med(np, &StepTimes::forward), med(np, &StepTimes::backward));
    std::printf(
        "  DP step            %8.3f s  (forward %.3f, backward %.3f, norms+clip %.3f)"
        "  clipped %lld/%lld\n",
        t_dp, med(dp, &StepTimes::forward), med(dp, &StepTimes::backward),
        med(dp, &StepTimes::clip), static_cast<long long>(clipped), static_cast<long long>(batch));
    std::printf(
        "  time ratio DP/non-private  %.3f median  (%.3f of the fastest steps; target <= 1.25)\n",
        t_dp / t_np, min_dp / min_np);
    if (compare) {
      const double t_other = median(totals(dp_other));
      std::printf(
          "  DP step, --%s  %.3f s  (backward %.3f, norms+clip %.3f): "
          "ratio %.3f median, %.3f of the fastest steps\n",
          args.compare.c_str(), t_other, med(dp_other, &StepTimes::backward),
          med(dp_other, &StepTimes::clip), t_other / t_np, min_of(totals(dp_other)) / min_np);
    }
    if (batch == args.batches.front()) {
      std::printf("\n  per-layer plan (batch %lld):\n%s", static_cast<long long>(batch),
                  format_plan(last_plan).c_str());
    }

    if (args.reference_samples > 0) {
      const int64_t n = std::min(args.reference_samples, batch);
      const auto t0 = Clock::now();
      other_clipper.reset();
      clipper.emplace(*w.module, options);
      reference_clipped_sum(*w.module, *clipper, n,
                            [&](int64_t i) { return w.losses(i * k, (i + 1) * k); });
      const double per_sample = seconds_since(t0) / static_cast<double>(n);
      std::printf(
          "  slow reference     %8.3f s  (%.1f ms/sample x %lld, timed on %lld samples)"
          "  = %.1fx the non-private step\n",
          per_sample * static_cast<double>(batch), per_sample * 1e3, static_cast<long long>(batch),
          static_cast<long long>(n), per_sample * static_cast<double>(batch) / t_np);
    }
  }
}

void run_memory(Workload& w, const Args& args) {
  const int64_t k = args.multiplicity;
  ClippingOptions options;
  options.noise_multiplicity = k;
  options.policy.chunk_bytes = args.chunk_mb << 20;
  for (int64_t batch : args.batches) {
    const int64_t rows = batch * k;
    w.make_batch(batch, k, 1234);
    set_dp_mode(*w.module, false);
    non_private_step(w, rows);  // warm-up: parameter grads exist in both measurements
    const Peak np = measure_peak([&] { non_private_step(w, rows); });
    set_dp_mode(*w.module, true);
    const NormPolicy default_policy = options.policy;
    for (bool compared : {false, true}) {
      if (compared && args.compare.empty()) break;
      options.policy = compared ? compared_policy(args, default_policy) : default_policy;
      PerSampleClipper clipper(*w.module, options);
      dp_step(w, clipper, batch, rows, nullptr);
      const Peak dp = measure_peak([&] { dp_step(w, clipper, batch, rows, nullptr); });
      std::printf(
          "  %-11s batch %4lld  step peak: non-private %7.1f MiB, DP%s%s %7.1f MiB, ratio %.3f"
          " (target <= 1.2)  |  process peak %7.1f / %7.1f MiB, ratio %.3f\n",
          w.name.c_str(), static_cast<long long>(batch), np.step / (1 << 20), compared ? " --" : "",
          compared ? args.compare.c_str() : "", dp.step / (1 << 20), dp.step / np.step,
          np.process / (1 << 20), dp.process / (1 << 20), dp.process / np.process);
    }
  }
  set_dp_mode(*w.module, false);
  clear_grads(*w.module);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they are measured
  const Args args = parse(argc, argv);
  torch::set_num_threads(args.threads);
  std::vector<Workload> workloads;
  for (const auto& m : args.models) {
    if (m == "ae") {
      workloads.push_back(autoencoder_workload());
    } else if (m == "unet") {
      workloads.push_back(unet_workload());
    } else {
      std::fprintf(stderr, "dp_step_bench: unknown model '%s' (ae, unet)\n", m.c_str());
      return 2;
    }
  }
  std::printf("dp_step_bench: LibTorch %s, %d intra-op threads\n", TORCH_VERSION,
              torch::get_num_threads());
  if (args.timing) {
    for (auto& w : workloads) run(w, args);
  }
  if (args.memory) {
    // Freed memory must leave the RSS for VmHWM to mean "peak live memory" (see the header).
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    std::printf("\n=== peak memory (VmHWM during one step, above the RSS before it)\n");
    for (auto& w : workloads) run_memory(w, args);
  }
  return 0;
}
