#include "trainer/stage_runner.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "comm/gradient_sync.h"
#include "comm/parameter_broadcast.h"
#include "core/check.h"
#include "core/log.h"
#include "monitoring/run_report.h"
#include "monitoring/training_metrics.h"
#include "trainer/checkpoint.h"
#include "trainer/dp_step.h"
#include "trainer/optimizer.h"
#include "trainer/progress.h"
#include "trainer/sample_random.h"
#include "trainer/train_config.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<std::pair<std::string, torch::Tensor>> trainable(torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& kv : module.named_parameters(true)) {
    if (kv.value().requires_grad()) out.emplace_back(kv.key(), kv.value());
  }
  return out;
}

// Appends a micro-batch's sample ids to the step's line of the sample-id log.
void log_ids(std::ofstream& out, const Batch& batch, bool first_of_step) {
  if (first_of_step) out << batch.global_step;
  if (!batch.ids.defined()) return;
  const auto ids = batch.ids.contiguous();
  const int64_t* p = ids.data_ptr<int64_t>();
  for (int64_t i = 0; i < ids.numel(); ++i) out << ' ' << p[i];
}

// Which checkpoint to resume from, decided on rank 0.
std::optional<std::string> resume_checkpoint(const RunOptions& run, const std::string& stage_dir) {
  if (run.resume == "never") return std::nullopt;
  if (run.resume != "auto") {
    const fs::path p = fs::absolute(run.resume).lexically_normal();
    // A checkpoint path applies to the stage whose directory holds it.
    if (p.parent_path().parent_path() == fs::absolute(stage_dir).lexically_normal()) {
      std::string why;
      UMBRA_CHECK(verify_checkpoint(p.string(), &why), "run.resume '", run.resume,
                  "': not a complete checkpoint: ", why);
      return p.string();
    }
  }
  return find_latest_checkpoint(stage_dir);
}

}  // namespace

TensorMap module_weights(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& kv : module.named_parameters(true)) out[kv.key()] = kv.value().detach();
  for (const auto& kv : module.named_buffers(true)) out[kv.key()] = kv.value().detach();
  return out;
}

void load_module_weights(torch::nn::Module& module, const TensorMap& weights,
                         const std::string& what) {
  torch::NoGradGuard no_grad;
  size_t used = 0;
  auto load = [&](const std::string& name, torch::Tensor& dst) {
    const auto it = weights.find(name);
    UMBRA_CHECK(it != weights.end(), what, ": tensor '", name,
                "' is missing (the configuration builds a different model than the one saved)");
    UMBRA_CHECK(it->second.sizes() == dst.sizes(), what, ": tensor '", name, "' has shape ",
                it->second.sizes(), " but the configured model expects ", dst.sizes(),
                " (the configuration does not match the checkpoint)");
    dst.copy_(it->second);
    ++used;
  };
  for (auto& kv : module.named_parameters(true)) load(kv.key(), kv.value());
  for (auto& kv : module.named_buffers(true)) load(kv.key(), kv.value());
  if (used != weights.size()) {
    const auto names = module_weights(module);
    for (const auto& kv : weights) {
      UMBRA_CHECK(names.count(kv.first), what, ": tensor '", kv.first,
                  "' is not part of the configured model (the configuration does not match)");
    }
  }
}

StageRunner::StageRunner(const StageContext& ctx, StageTask& task, const StageTrainOptions& options,
                         std::shared_ptr<const Sampler> sampler, SourceFactory make_source,
                         nlohmann::json extra_state, StagePrivacy privacy)
    : ctx_(ctx),
      task_(task),
      opts_(options),
      sampler_(std::move(sampler)),
      make_source_(std::move(make_source)),
      extra_state_(std::move(extra_state)),
      privacy_(std::move(privacy)) {}

std::string StageRunner::stage_dir() const { return ctx_.run_dir + "/" + task_.name(); }

nlohmann::json StageRunner::load_final_weights(const std::string& stage_dir,
                                               torch::nn::Module& module) {
  const auto dir = find_latest_checkpoint(stage_dir);
  UMBRA_CHECK(dir.has_value(), stage_dir,
              ": no complete checkpoint to load (train this stage first)");
  const Checkpoint c = read_checkpoint(*dir);
  load_module_weights(module, c.ema, *dir + "/ema.safetensors");
  nlohmann::json state = c.state;
  state["checkpoint"] = *dir;
  return state;
}

StageResult StageRunner::run() {
  const TrainConfig& cfg = *ctx_.cfg;
  Communicator& comm = *ctx_.comm;
  const int rank = comm.rank();
  torch::nn::Module& model = task_.module();
  model.train();
  const auto params = trainable(model);
  Optimizer optimizer(params, opts_.optimizer);
  Ema ema(params, opts_.ema_decay);
  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);

  // Resume: rank 0 reads the checkpoint, every rank takes rank 0's tensors and state.
  StageResult result;
  nlohmann::json state;
  if (rank == 0) {
    if (const auto dir = resume_checkpoint(cfg.run, stage_dir())) {
      const Checkpoint c = read_checkpoint(*dir);
      load_module_weights(model, c.model, *dir + "/model.safetensors");
      ema.load(c.ema);
      optimizer.load_state(c.optimizer);
      state = c.state;
      state["checkpoint"] = *dir;
    }
  }
  state = nlohmann::json::parse(comm.all_gather_strings(state.dump())[0]);
  broadcast_parameters(comm, model);
  int64_t start = 0;
  SamplerState sampler_state{seed, 0, 0};
  if (!state.is_null()) {
    std::vector<std::pair<std::string, torch::Tensor>> ema_tensors(ema.weights().begin(),
                                                                   ema.weights().end());
    broadcast_tensors(comm, ema_tensors, "EMA weights");
    TensorMap opt_state = optimizer.state();
    std::vector<std::pair<std::string, torch::Tensor>> opt_tensors(opt_state.begin(),
                                                                   opt_state.end());
    broadcast_tensors(comm, opt_tensors, "optimizer state");
    optimizer.load_state(opt_state);
    start = state.at("step").get<int64_t>();
    const auto& s = state.at("sampler");
    sampler_state = {s.at("seed").get<uint64_t>(), s.at("epoch").get<int64_t>(),
                     s.at("step").get<int64_t>()};
    UMBRA_CHECK(sampler_state.seed == seed, state["checkpoint"].get<std::string>(),
                ": checkpoint was trained with run.seed=", sampler_state.seed,
                " but the configuration says ", seed);
    result.checkpoint = state["checkpoint"].get<std::string>();
    privacy_.resume_from(state.value("privacy", nlohmann::json()), result.checkpoint);
    if (rank == 0) {
      spdlog::info("{}: resuming from {} at step {}", task_.name(), result.checkpoint, start);
    }
  }
  result.final_step = start;
  result.privacy = privacy_.to_json();
  if (start >= opts_.max_steps) return result;

  // The privacy budget decides how far this call may go.
  int64_t stop_at = opts_.max_steps;
  const bool dp = privacy_.enabled;
  const PrivacyOptions& popts = privacy_.options;
  if (dp) {
    const int64_t allowed = privacy_.accountant.steps_until(
        popts.target_epsilon, popts.delta, privacy_.noise_multiplier, privacy_.sample_rate,
        opts_.max_steps - start);
    const double spent = privacy_.accountant.epsilon(popts.delta);
    UMBRA_CHECK(allowed > 0, task_.name(), ": the privacy budget is spent: epsilon = ", spent,
                " at delta = ", popts.delta, "; one more step (sigma = ", privacy_.noise_multiplier,
                ", q = ", privacy_.sample_rate,
                ") would exceed privacy.target_epsilon = ", popts.target_epsilon,
                ". Nothing was trained.");
    stop_at = start + allowed;
    if (rank == 0) {
      spdlog::info(
          "{}: DP-SGD sigma={:.4f} ({}), C={}, q={:.6f} (expected batch {}), K={}, {} clipping, "
          "{} noise; epsilon so far {:.4f} of {} (delta {})",
          task_.name(), privacy_.noise_multiplier, privacy_.noise_multiplier_source,
          popts.max_grad_norm, privacy_.sample_rate, popts.expected_batch_size,
          privacy_.noise_multiplicity, popts.clipping, popts.secure_mode ? "secure" : "seeded",
          spent, popts.target_epsilon, popts.delta);
      if (stop_at < opts_.max_steps) {
        spdlog::warn("{}: the privacy budget allows {} more steps: stopping at step {} of {}",
                     task_.name(), allowed, stop_at, opts_.max_steps);
      }
    }
  }

  GradientSyncOptions sync_options = GradientSyncOptions::from(cfg.comm);
  sync_options.use_hooks = !dp;  // DP hands in clipped, noised sums itself
  GradientSync sync(comm, params, sync_options);
  std::unique_ptr<DpGradient> dp_grad;
  if (dp) {
    const uint64_t noise_seed = step_seed(seed, RngStream::kNoise, task_.name()[0] == 'p' ? 2 : 1);
    dp_grad = std::make_unique<DpGradient>(model, params, popts, privacy_.noise_multiplicity,
                                           privacy_.noise_multiplier,
                                           sampler_->expected_batch_size(), noise_seed, rank);
  }
  std::ofstream id_log;
  if (cfg.run.log_sample_ids) {
    fs::create_directories(stage_dir());
    id_log.open(stage_dir() + "/sample_ids.rank" + std::to_string(rank) + ".txt", std::ios::app);
    UMBRA_CHECK(id_log.good(), stage_dir(), "/sample_ids.rank", rank, ".txt: cannot open");
    if (start > 0) id_log << "# resume " << start << "\n";
  }
  auto source = make_source_(sampler_state, stop_at - start);
  TrainingMetrics metrics =
      ctx_.metrics ? TrainingMetrics(*ctx_.metrics, rank, task_.name()) : TrainingMetrics();
  Progress progress(task_.name(), start, opts_.max_steps, rank == 0 && ctx_.progress);
  const double global_batch = sampler_->expected_batch_size();
  const std::string config_digest = config_hash(cfg);
  const auto run_start = Clock::now();
  double stall_before = source->stall_seconds();
  double window_images = 0;
  auto window_start = Clock::now();
  double images_per_s = 0;
  int64_t window_dp_samples = 0, window_dp_clipped = 0;

  auto write_checkpoint_now = [&](int64_t next_step) {
    const auto t0 = Clock::now();
    if (rank == 0) {
      Checkpoint c;
      c.model = module_weights(model);
      c.ema = ema.weights();
      c.optimizer = optimizer.state();
      const SamplerState s = source->state();
      c.state = {{"stage", task_.name()},
                 {"step", next_step},
                 {"sampler", {{"seed", s.seed}, {"epoch", s.epoch}, {"step", s.step}}},
                 {"config_hash", config_digest},
                 {"privacy", privacy_.to_json()},
                 {"world_size", comm.size()},
                 {"umbra_version", "0.1.0"}};
      for (const auto& kv : extra_state_.items()) c.state[kv.key()] = kv.value();
      result.checkpoint =
          write_checkpoint(stage_dir(), next_step, c, static_cast<int>(cfg.checkpoint.keep));
      metrics.checkpoint_duration.observe(seconds_since(t0));
      metrics.checkpoint_last_time.set(
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count());
      // The report is for people; a failure to write it must not cost the run.
      try {
        write_run_report(ctx_.run_dir);
      } catch (const Error& e) {
        spdlog::warn("report.html not updated: {}", e.what());
      }
    }
  };

  auto evaluate_now = [&](int64_t step) {
    if (rank != 0) return;
    // Evaluate with the EMA weights, then put the training weights back.
    const TensorMap current = module_weights(model);
    TensorMap saved;
    for (const auto& kv : current) saved[kv.first] = kv.second.clone();
    TensorMap with_ema = saved;
    for (const auto& kv : ema.weights()) with_ema[kv.first] = kv.second;
    load_module_weights(model, with_ema, "EMA weights");
    fs::create_directories(ctx_.run_dir + "/samples");
    const std::string png =
        ctx_.run_dir + "/samples/" + task_.name() + "_step_" + std::to_string(step) + ".png";
    result.evaluation = task_.evaluate(png, step);
    result.evaluation["picture"] = png;
    load_module_weights(model, saved, "training weights");
    model.train();
    progress.message(std::string(task_.name()) + " step " + std::to_string(step) + ": " +
                     result.evaluation.dump());
  };

  int64_t step = start;
  for (; step < stop_at; ++step) {
    comm.set_step(step);
    torch::manual_seed(step_seed(seed, RngStream::kDropout, step, rank));
    const auto step_start = Clock::now();

    int64_t step_samples = 0;
    double local_loss_sum = 0;
    DpStepStats dp_stats;
    if (dp) {
      dp_grad->begin_step();
      // A step is one Poisson logical batch: this rank's micro-batches, the last one marked.
      for (bool more = true; more;) {
        PhaseTimer data_timer(metrics.phase(StepPhase::kData));
        std::optional<Batch> batch = source->next();
        UMBRA_ASSERT(batch.has_value(), "batch source ended before the last step");
        data_timer.stop();
        more = !batch->last_of_step();
        const int64_t b = batch->size();
        if (id_log.is_open()) log_ids(id_log, *batch, batch->micro_index == 0);
        step_samples += b;
        if (b == 0) continue;  // an empty Poisson batch: the step is noise only
        PhaseTimer forward_timer(metrics.phase(StepPhase::kForward));
        const torch::Tensor losses =
            task_.per_sample_loss(*batch, batch->global_step, privacy_.noise_multiplicity);
        forward_timer.stop();
        local_loss_sum += losses.detach().sum().item<double>();
        PhaseTimer backward_timer(metrics.phase(StepPhase::kBackward));
        dp_grad->accumulate(losses, b);
        backward_timer.stop();
      }
    } else {
      PhaseTimer data_timer(metrics.phase(StepPhase::kData));
      std::optional<Batch> batch = source->next();
      UMBRA_ASSERT(batch.has_value(), "batch source ended before max_steps");
      data_timer.stop();
      UMBRA_ASSERT(batch->last_of_step(), "non-private steps take one micro-batch per rank");
      if (id_log.is_open()) log_ids(id_log, *batch, true);
      step_samples = batch->size();
      optimizer.zero_grad();
      PhaseTimer forward_timer(metrics.phase(StepPhase::kForward));
      const torch::Tensor losses = task_.per_sample_loss(*batch, batch->global_step, 1);
      const torch::Tensor loss_sum = losses.sum();
      forward_timer.stop();
      PhaseTimer backward_timer(metrics.phase(StepPhase::kBackward));
      loss_sum.backward();
      backward_timer.stop();
      local_loss_sum = loss_sum.item<double>();
    }
    // Flushed per step: a killed rank's log must show every step it took.
    if (id_log.is_open()) id_log << std::endl;
    PhaseTimer allreduce_timer(metrics.phase(StepPhase::kAllreduce));
    if (dp) {
      dp_stats = dp_grad->finish(sync, step);
    } else {
      sync.finish(global_batch);
    }
    const double loss = comm.all_reduce_sum(local_loss_sum, "loss") / global_batch;
    allreduce_timer.stop();
    UMBRA_CHECK(std::isfinite(loss), task_.name(), " loss became ", loss, " at step ", step,
                "; stopping without writing a checkpoint (the last good one is ",
                result.checkpoint.empty() ? std::string("none") : result.checkpoint,
                "). Lower the learning rate or check the data.");

    PhaseTimer clip_timer(metrics.phase(StepPhase::kClip));
    // Under DP the gradient is already clipped per sample and noised; norm clipping the noisy
    // average would only bias it.
    const double grad_norm = clip_global_norm(params, dp ? 0.0 : opts_.grad_clip);
    clip_timer.stop();
    PhaseTimer optimizer_timer(metrics.phase(StepPhase::kOptimizer));
    const double lr = learning_rate(opts_.optimizer, step, opts_.max_steps);
    optimizer.step(lr);
    ema.update(params);
    optimizer_timer.stop();
    if (dp) {
      privacy_.accountant.add_steps(task_.name(), privacy_.noise_multiplier, privacy_.sample_rate,
                                    1);
      metrics.dp_samples.inc(static_cast<double>(dp_stats.samples));
      metrics.dp_clipped_samples.inc(static_cast<double>(dp_stats.clipped));
      window_dp_samples += dp_stats.samples;
      window_dp_clipped += dp_stats.clipped;
    }

    const double step_s = seconds_since(step_start);
    window_images += global_batch;
    const double stall = source->stall_seconds();
    metrics.steps.inc();
    metrics.samples.inc(static_cast<double>(step_samples));
    metrics.data_stall_seconds.inc(stall - stall_before);
    stall_before = stall;
    metrics.loss.set(loss);
    metrics.learning_rate.set(lr);
    metrics.grad_norm.set(grad_norm);
    (void)step_s;

    const bool last = step + 1 == stop_at;
    if ((step + 1) % opts_.log_every == 0 || last) {
      images_per_s = window_images / std::max(seconds_since(window_start), 1e-9);
      metrics.images_per_second.set(images_per_s);
      window_images = 0;
      window_start = Clock::now();
      std::optional<double> epsilon;
      double clip_fraction = 0;
      if (dp) {
        epsilon = privacy_.accountant.epsilon(popts.delta);
        metrics.dp_epsilon.set(*epsilon);
        metrics.dp_target_epsilon.set(popts.target_epsilon);
        // Clip fraction over all ranks' samples of the window.
        const double n = comm.all_reduce_sum(static_cast<double>(window_dp_samples), "dp samples");
        const double c = comm.all_reduce_sum(static_cast<double>(window_dp_clipped), "dp clipped");
        clip_fraction = n > 0 ? c / n : 0.0;
        window_dp_samples = window_dp_clipped = 0;
      }
      progress.update(step, loss, images_per_s, epsilon);
      if (ctx_.jsonl) {
        StepRecord r;
        r.stage = task_.name();
        r.step = step + 1;
        r.time = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                     .count();
        r.loss = loss;
        r.lr = lr;
        r.images_per_s = images_per_s;
        r.extra["grad_norm"] = grad_norm;
        r.extra["data_stall_s"] = stall;
        if (dp) {
          r.epsilon = epsilon;
          r.extra["clip_fraction"] = clip_fraction;
        }
        ctx_.jsonl->write(r);
      }
    }
    if ((opts_.eval_every > 0 && (step + 1) % opts_.eval_every == 0) || last) {
      evaluate_now(step + 1);
    }
    if ((step + 1) % cfg.checkpoint.every_steps == 0 || last) write_checkpoint_now(step + 1);
  }
  progress.finish();
  if (dp && rank == 0 && stop_at < opts_.max_steps) {
    spdlog::warn(
        "{}: stopped at step {} of {}: the next step would take epsilon above "
        "privacy.target_epsilon = {} (spent {:.4f})",
        task_.name(), stop_at, opts_.max_steps, popts.target_epsilon,
        privacy_.accountant.epsilon(popts.delta));
  }
  result.steps = step - start;
  result.final_step = step;
  result.budget_stop = stop_at < opts_.max_steps;
  result.privacy = privacy_.to_json();
  result.seconds = seconds_since(run_start);
  result.images_per_s = static_cast<double>(result.steps) * global_batch / result.seconds;
  return result;
}

}  // namespace umbra
