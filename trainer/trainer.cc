#include "trainer/trainer.h"

#include <filesystem>
#include <fstream>

#include "comm/parameter_broadcast.h"
#include "core/check.h"
#include "core/log.h"
#include "data/canaries.h"
#include "monitoring/file_sd.h"
#include "monitoring/jsonl_log.h"
#include "monitoring/prometheus_exporter.h"
#include "monitoring/training_metrics.h"
#include "trainer/checkpoint.h"
#include "trainer/stage_privacy.h"
#include "trainer/stage_runner.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

// Every rank runs `fn`; if it throws on any rank, every rank throws one error naming the ranks
// and their reasons (so no rank is left waiting in a collective).
template <class F>
void on_all_ranks(Communicator& comm, const std::string& what, F fn) {
  std::string error;
  try {
    fn();
  } catch (const std::exception& e) {
    error = e.what();
  }
  const auto errors = comm.all_gather_strings(error, what);
  std::string message;
  for (size_t r = 0; r < errors.size(); ++r) {
    if (!errors[r].empty()) {
      message += (message.empty() ? "" : "; ") + std::string("rank ") + std::to_string(r) + ": " +
                 errors[r];
    }
  }
  UMBRA_CHECK(message.empty(), what, " failed: ", message);
}

void prepare_run_dir(const TrainConfig& cfg, const std::string& run_dir) {
  const bool exists = fs::exists(run_dir + "/config.yaml");
  UMBRA_CHECK(!(exists && cfg.run.resume == "never"), run_dir,
              ": the run directory already exists and run.resume is 'never' (choose another "
              "run.name, remove it, or set run.resume=auto)");
  if (cfg.run.resume != "auto" && cfg.run.resume != "never") {
    UMBRA_CHECK(fs::is_directory(cfg.run.resume), "run.resume '", cfg.run.resume,
                "': no such checkpoint directory");
    // A checkpoint resumes the stage of this run that wrote it (<run>/<stage>/checkpoints/
    // step_N); one from another run would be trained on other data, canaries and budget.
    const fs::path stage =
        fs::absolute(cfg.run.resume).lexically_normal().parent_path().parent_path();
    const fs::path run = fs::absolute(run_dir).lexically_normal();
    UMBRA_CHECK(stage == run / "autoencoder" || stage == run / "prior", "run.resume '",
                cfg.run.resume, "': not a checkpoint of this run (expected ", run.string(),
                "/autoencoder/checkpoints/step_N or ", run.string(),
                "/prior/checkpoints/step_N); to start from another run's weights, copy its "
                "run directory under a new run.name");
  }
  fs::create_directories(run_dir + "/samples");
  const std::string path = run_dir + "/config.yaml";
  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp);
  out << resolved_yaml(cfg);
  out.close();
  UMBRA_CHECK(out.good(), tmp, ": write failed");
  fs::rename(tmp, path);
}

double latent_std(const torch::Tensor& latents) { return latents.std().item<double>(); }

// Non-private stages draw fixed-size batches from an epoch permutation; DP stages draw Poisson
// batches of expected size privacy.expected_batch_size (DESIGN.md §4, §5).
std::shared_ptr<const Sampler> stage_sampler(const TrainConfig& cfg, int64_t batch_size,
                                             int64_t num_samples, uint64_t seed) {
  if (!cfg.privacy.enabled) return std::make_shared<EpochSampler>(num_samples, batch_size, seed);
  return std::make_shared<PoissonSampler>(num_samples, cfg.privacy.sample_rate(num_samples), seed);
}

int64_t physical_batch(const TrainConfig& cfg) {
  return cfg.privacy.enabled ? cfg.privacy.max_physical_batch : 0;
}

// data.canaries (data/canaries.h): the training split with the included canaries appended, the
// same on every rank (a pure function of the configuration and the data). *record gets what
// <run>/canaries.json holds.
std::shared_ptr<const SplitData> add_canaries(const CanaryOptions& o,
                                              std::shared_ptr<const SplitData> train,
                                              const SplitData* test, nlohmann::json* record) {
  const SplitData canaries = make_canaries(o, train->meta, test);
  const std::vector<bool> included = canary_inclusion(static_cast<uint64_t>(o.seed), o.count);
  auto augmented = std::make_shared<const SplitData>(with_canaries(*train, canaries, included));
  const int64_t n_included = augmented->count() - train->count();
  // The seed is the audit's secret: canaries.json stays in the run directory; `umbra release`
  // publishes neither this file nor the seed (audit/release_run.cc uses public_yaml()).
  *record = {{"count", o.count},
             {"kind", o.kind},
             {"seed", o.seed},
             {"included", n_included},
             {"id_base", kCanaryIdBase},
             {"dataset_images", train->count()},
             {"train_images", augmented->count()}};
  return augmented;
}

// A run's canaries cannot change once it has a checkpoint: the checkpoints were trained on that
// training set (and its N is in their privacy accounting). Checked against <run>/canaries.json
// (absent: no canaries) before config.yaml is rewritten. Rank 0.
void check_canaries_unchanged(const std::string& run_dir, const CanaryOptions& o) {
  const std::string path = run_dir + "/canaries.json";
  const bool trained = find_latest_checkpoint(run_dir + "/autoencoder").has_value() ||
                       find_latest_checkpoint(run_dir + "/prior").has_value();
  if (!trained) return;
  nlohmann::json before = {{"count", 0}};
  if (fs::exists(path)) {
    try {
      before = nlohmann::json::parse(std::ifstream(path));
    } catch (const nlohmann::json::exception& e) {
      UMBRA_FAIL(path, ": not valid JSON: ", e.what());
    }
  }
  const int64_t count = before.value("count", int64_t{0});
  const std::string kind = before.value("kind", std::string());
  const int64_t seed = before.value("seed", int64_t{-1});
  const bool same = count == o.count && (count == 0 || (kind == o.kind && seed == o.seed));
  std::string before_text = "no canaries";
  if (count > 0) {
    before_text = "count " + std::to_string(count) + ", kind " + kind +
                  (count == o.count && kind == o.kind ? ", another data.canaries.seed" : "") +
                  "; see " + path;
  }
  UMBRA_CHECK(same, run_dir, ": data.canaries (count ", o.count, ", kind ", o.kind,
              ") differs from what this run's checkpoints were trained with (", before_text,
              "); keep data.canaries.count/kind/seed as they were, or start a new run.name");
}

// Writes <run>/canaries.json (or removes a stale one when the run has no canaries). Rank 0.
void write_canaries_record(const std::string& run_dir, const nlohmann::json& record) {
  const std::string path = run_dir + "/canaries.json";
  if (record.is_null()) {
    fs::remove(path);
    return;
  }
  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp);
  out << record.dump(2) << "\n";
  out.close();
  UMBRA_CHECK(out.good(), tmp, ": write failed");
  fs::rename(tmp, path);
}

nlohmann::json stage_summary(const StageResult& r) {
  return {{"steps", r.steps},           {"final_step", r.final_step},
          {"seconds", r.seconds},       {"images_per_s", r.images_per_s},
          {"checkpoint", r.checkpoint}, {"evaluation", r.evaluation},
          {"privacy", r.privacy},       {"budget_stop", r.budget_stop}};
}

}  // namespace

LatentSet encode_split(AutoencoderImpl& autoencoder, const SplitData& split, Communicator& comm) {
  torch::NoGradGuard no_grad;
  const bool was_training = autoencoder.is_training();
  autoencoder.eval();
  const int64_t n = split.count();
  const auto [begin, end] = rank_slice(n, comm.rank(), comm.size());
  const auto shape = autoencoder.latent_shape();
  const int64_t per = shape[0] * shape[1] * shape[2];
  const int64_t max_share = (n + comm.size() - 1) / comm.size();
  torch::Tensor local = torch::zeros({max_share, per});
  constexpr int64_t kChunk = 500;
  for (int64_t b = begin; b < end; b += kChunk) {
    std::vector<int64_t> positions;
    for (int64_t i = b; i < std::min(end, b + kChunk); ++i) positions.push_back(i);
    const Batch batch = decode_batch(split, positions, 0, DecodeOptions{});
    const Posterior q = autoencoder.encode(batch.images);
    local.slice(0, b - begin, b - begin + static_cast<int64_t>(positions.size()))
        .copy_(q.mean.reshape({-1, per}));
  }
  const torch::Tensor gathered = comm.all_gather(local, "encode latents");
  LatentSet set;
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < comm.size(); ++r) {
    const auto [rb, re] = rank_slice(n, r, comm.size());
    parts.push_back(gathered[r].slice(0, 0, re - rb));
  }
  set.latents = torch::cat(parts).view({n, shape[0], shape[1], shape[2]});
  set.labels = torch::tensor(split.labels, torch::kInt64);
  set.ids = torch::tensor(split.ids, torch::kInt64);
  if (was_training) autoencoder.train();
  return set;
}

TrainOutcome train(const TrainConfig& cfg, Communicator& comm) {
  cfg.validate();
  const int rank = comm.rank();
  TrainOutcome outcome;
  outcome.run_dir = cfg.run.path();
  const std::string& run_dir = outcome.run_dir;
  comm.check_same_on_all_ranks("config hash", config_hash(cfg));
  on_all_ranks(comm, "preparing the run directory", [&] {
    if (rank == 0) {
      check_canaries_unchanged(run_dir, cfg.data.canaries);
      prepare_run_dir(cfg, run_dir);
    }
  });
  init_logging(rank, run_dir + "/logs");
  spdlog::info("run {} on {} rank(s) ({} backend), {} intra-op thread(s) per rank", run_dir,
               comm.size(), comm.backend(), torch::get_num_threads());

  // Monitoring: one exporter per rank, rank 0 writes the job's file_sd target file.
  auto registry = std::make_shared<MetricRegistry>();
  std::unique_ptr<PrometheusExporter> exporter;
  if (cfg.monitoring.enabled) {
    on_all_ranks(comm, "starting the metrics exporter", [&] {
      exporter = std::make_unique<PrometheusExporter>(registry, cfg.monitoring, comm.local_rank());
    });
    publish_build_info(*registry, rank, default_build_info(comm.backend()));
    const auto addresses = comm.all_gather_strings(exporter->address(), "exporter addresses");
    if (rank == 0) {
      std::vector<ScrapeTarget> targets;
      for (size_t r = 0; r < addresses.size(); ++r) {
        targets.push_back({addresses[r], {{"run", cfg.run.name}, {"rank", std::to_string(r)}}});
      }
      write_file_sd(file_sd_path(cfg.run.dir, cfg.run.name), targets);
    }
  }
  std::unique_ptr<JsonlLog> jsonl;
  if (rank == 0 && cfg.monitoring.jsonl)
    jsonl = std::make_unique<JsonlLog>(run_dir + "/metrics.jsonl");
  StageContext ctx{&cfg,        &comm, run_dir, cfg.monitoring.enabled ? registry.get() : nullptr,
                   jsonl.get(), true};

  std::shared_ptr<const SplitData> train_split, test_split;
  const CanaryOptions& canary_opts = cfg.data.canaries;
  nlohmann::json canaries;  // null: no canaries
  on_all_ranks(comm, "opening the data", [&] {
    train_split = Loader::load(cfg.data, "train");
    if (rank == 0) test_split = Loader::load(cfg.data, "test");
    if (canary_opts.enabled()) {
      // Every rank builds the same augmented split (relabel canaries come from the test split).
      std::shared_ptr<const SplitData> test = test_split;
      if (!test && canary_opts.kind == "relabel") test = Loader::load(cfg.data, "test");
      const int64_t n_data = train_split->count();
      train_split = add_canaries(canary_opts, train_split, test.get(), &canaries);
      if (rank == 0) {
        spdlog::info(
            "canaries: {} of {} '{}' canaries included (ids {}+j): training on {} + {} = {} "
            "images",
            canaries["included"].get<int64_t>(), canary_opts.count, canary_opts.kind, kCanaryIdBase,
            n_data, canaries["included"].get<int64_t>(), train_split->count());
      }
    }
  });
  on_all_ranks(comm, "recording the canaries", [&] {
    if (rank == 0) write_canaries_record(run_dir, canaries);
  });
  // What each stage's state.json records (the seed stays out: it is in config.yaml).
  nlohmann::json canary_state = nullptr;
  if (!canaries.is_null()) {
    canary_state = canaries;
    canary_state.erase("seed");
  }
  const auto& meta = train_split->meta;
  const auto& ae_opts = cfg.autoencoder.model;
  UMBRA_CHECK(meta.channels == ae_opts.in_channels && meta.height == ae_opts.image_size &&
                  meta.width == ae_opts.image_size,
              cfg.data.path, ": images are ", meta.channels, "x", meta.height, "x", meta.width,
              " but autoencoder.in_channels/image_size say ", ae_opts.in_channels, "x",
              ae_opts.image_size, "x", ae_opts.image_size);
  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);

  // Weight initialisation draws from LibTorch's global generator: seed it from run.seed so a
  // run is reproducible and N ranks start from the weights 1 rank would (rank 0's are broadcast).
  torch::manual_seed(seed);
  AutoencoderTask ae_task(cfg, test_split);
  // N of the privacy accounting (q = expected batch / N) and of the samplers: the training set
  // as trained on, i.e. the dataset plus the included canaries.
  const int64_t n_train = train_split->count();
  if (cfg.stage == "autoencoder" || cfg.stage == "both") {
    const auto& t = cfg.autoencoder.train;
    auto sampler = stage_sampler(cfg, t.batch_size, n_train, seed);
    // σ (when calibrated) covers both stages' steps: one σ for the whole run.
    const int64_t planned = t.max_steps + (cfg.stage == "both" ? cfg.prior.train.max_steps : 0);
    StagePrivacy privacy =
        plan_stage_privacy(cfg.privacy, "autoencoder", n_train, 1, nullptr, planned);
    StageRunner runner(
        ctx, ae_task, t, sampler,
        [&](const SamplerState& start, int64_t steps) {
          LoaderSpec spec{rank, comm.size(), start, physical_batch(cfg), steps};
          return std::make_unique<ImageSource>(train_split, sampler, cfg.data, spec);
        },
        canary_state.is_null() ? nlohmann::json::object()
                               : nlohmann::json{{"canaries", canary_state}},
        std::move(privacy));
    const StageResult r = runner.run();
    outcome.summary["autoencoder"] = stage_summary(r);
    UMBRA_CHECK(!r.budget_stop || cfg.stage == "autoencoder",
                "autoencoder: the privacy budget ran out before the last autoencoder step, so "
                "none is left for the prior; raise privacy.target_epsilon or the noise, or train "
                "fewer steps");
  }
  if (cfg.stage == "prior" || cfg.stage == "both") {
    Autoencoder autoencoder = ae_task.model();
    // Rank 0 reads the stage-1 checkpoint (only it writes checkpoints, so only it is sure to see
    // the newest one without a shared file system) and every rank takes its weights and state.
    nlohmann::json ae_state;
    on_all_ranks(comm, "loading the stage-1 autoencoder", [&] {
      if (rank == 0) {
        ae_state = StageRunner::load_final_weights(run_dir + "/autoencoder", *autoencoder);
      }
    });
    ae_state = nlohmann::json::parse(comm.all_gather_strings(ae_state.dump(), "stage-1 state")[0]);
    broadcast_parameters(comm, *autoencoder);
    LatentSet set = encode_split(*autoencoder, *train_split, comm);
    double scale = cfg.prior.model.scale_factor;
    std::string scale_source = "prior.scale_factor (fixed in the configuration)";
    if (scale == 0) {
      scale = 1.0 / latent_std(set.latents);
      scale_source = "1/std of the stage-1 latents of the training split (" +
                     std::to_string(set.count()) + " images)";
    }
    spdlog::info("prior: latent scale factor {:.5f} from {}", scale, scale_source);
    set.latents = set.latents * scale;
    auto latents = std::make_shared<const LatentSet>(std::move(set));
    torch::manual_seed(seed + 1);
    PriorTask prior_task(cfg, autoencoder, scale);
    const auto& t = cfg.prior.train;
    auto sampler = stage_sampler(cfg, t.batch_size, latents->count(), seed);
    StagePrivacy privacy = plan_stage_privacy(
        cfg.privacy, "prior", latents->count(), cfg.privacy.noise_multiplicity,
        // A checkpoint that predates the privacy record counts as trained without DP.
        ae_state.value("privacy", nlohmann::json{{"enabled", false}}), t.max_steps);
    nlohmann::json prior_extra = {{"scale_factor", scale}, {"scale_factor_source", scale_source}};
    if (!canary_state.is_null()) prior_extra["canaries"] = canary_state;
    StageRunner runner(
        ctx, prior_task, t, sampler,
        [&](const SamplerState& start, int64_t steps) {
          LoaderSpec spec{rank, comm.size(), start, physical_batch(cfg), steps};
          return std::make_unique<LatentSource>(latents, sampler, spec);
        },
        prior_extra, std::move(privacy));
    const StageResult r = runner.run();
    outcome.summary["prior"] = stage_summary(r);
    outcome.summary["prior"]["scale_factor"] = scale;
    outcome.summary["prior"]["scale_factor_source"] = scale_source;
  }
  if (!canaries.is_null()) {
    canaries.erase("seed");
    outcome.summary["canaries"] = canaries;
  }
  comm.barrier("end of training");
  if (rank == 0) {
    std::ofstream out(run_dir + "/summary.json");
    out << outcome.summary.dump(2) << "\n";
  }
  return outcome;
}

}  // namespace umbra
