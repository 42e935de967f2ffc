#include "audit/audit_run.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <unordered_map>

#include "audit/audit_page.h"
#include "audit/canary_audit.h"
#include "audit/membership.h"
#include "audit/memorization.h"
#include "audit/quality.h"
#include "audit/run_privacy.h"
#include "audit/text_file.h"
#include "comm/communicator.h"
#include "core/check.h"
#include "core/log.h"
#include "core/png.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "data/batch.h"
#include "data/canaries.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "models/diffusion_loss.h"
#include "models/elbo.h"
#include "trainer/trained_run.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Generation chunk: equal to generate_images' own chunk, so a chunk seeded with seed + begin
// gives exactly what one call over all N gives.
constexpr int64_t kSampleChunk = 256;
constexpr int64_t kScoreChunk = 100;

// fn(begin, count) -> [count, item_shape...] of `dtype`, for the fixed chunks of [0, n), chunks
// dealt round-robin to the ranks; returns the concatenation [n, item_shape...] on every rank.
// Collective.
torch::Tensor map_chunks(Communicator& comm, int64_t n, int64_t chunk,
                         const std::vector<int64_t>& item_shape, torch::ScalarType dtype,
                         const std::string& what,
                         const std::function<torch::Tensor(int64_t, int64_t)>& fn) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int size = comm.size(), rank = comm.rank();
  const int64_t per_rank = (chunks + size - 1) / size;
  std::vector<int64_t> shape = {std::max<int64_t>(per_rank, 1), chunk};
  shape.insert(shape.end(), item_shape.begin(), item_shape.end());
  torch::Tensor local = torch::zeros(shape, torch::TensorOptions().dtype(dtype));
  const auto t0 = Clock::now();
  for (int64_t j = 0; j < per_rank; ++j) {
    const int64_t c = rank + j * size;
    if (c >= chunks) break;
    const int64_t begin = c * chunk, count = std::min(chunk, n - begin);
    const torch::Tensor out = fn(begin, count);
    UMBRA_ASSERT(out.size(0) == count, what, ": chunk result has ", out.size(0), " rows");
    local[j].slice(0, 0, count).copy_(out.reshape(local[j].slice(0, 0, count).sizes()));
    spdlog::info("audit: {}: {}/{} chunk(s) of this rank done ({:.1f} s)", what, j + 1,
                 (chunks - rank + size - 1) / size, seconds_since(t0));
  }
  const torch::Tensor all = comm.all_gather(local, what);
  std::vector<torch::Tensor> parts;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t count = std::min(chunk, n - c * chunk);
    parts.push_back(all[c % size][c / size].slice(0, 0, count));
  }
  if (parts.empty()) {
    std::vector<int64_t> empty = {0};
    empty.insert(empty.end(), item_shape.begin(), item_shape.end());
    return torch::zeros(empty, torch::TensorOptions().dtype(dtype));
  }
  return torch::cat(parts);
}

// `count` positions spread evenly over [0, n).
std::vector<int64_t> spread_positions(int64_t n, int64_t count) {
  std::vector<int64_t> p;
  for (int64_t i = 0; i < count; ++i) p.push_back(i * n / count);
  return p;
}

// `count` of `positions` spread evenly over the list.
std::vector<int64_t> spread_over(const std::vector<int64_t>& positions, int64_t count) {
  std::vector<int64_t> p;
  for (int64_t i : spread_positions(static_cast<int64_t>(positions.size()), count)) {
    p.push_back(positions[static_cast<size_t>(i)]);
  }
  return p;
}

torch::Tensor decode_positions(const SplitData& split, const std::vector<int64_t>& positions) {
  return decode_batch(split, positions, 0, DecodeOptions{}).images;
}

uint64_t derived_seed(uint64_t seed, uint64_t purpose, uint64_t counter) {
  return rng_below(seed, rng_stream(RngStream::kEvaluation, purpose), counter, uint64_t{1} << 62);
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

nlohmann::json checkpoint_info(const nlohmann::json& state) {
  const std::string dir = state.value("checkpoint", std::string());
  nlohmann::json j = {{"checkpoint", dir}, {"step", state.value("step", int64_t{0})}};
  const std::string ema = dir + "/ema.safetensors";
  if (!dir.empty() && fs::is_regular_file(ema)) j["ema_sha256"] = sha256_file(ema);
  return j;
}

// Membership scores of the images at `positions` of `split`: [n, 2] float64, column 0 the mean
// diffusion loss over the fixed (t, noise) pairs, column 1 the autoencoder's -ELBO in nats.
// `side` separates the noise seeds of members (0), non-members (1) and canaries (2).
// elbo_only: column 0 is NaN and the prior is not run (the canary reference views need only the
// -ELBO); column 1 is the same either way, since its latent draws have their own generator.
torch::Tensor membership_scores(Communicator& comm, TrainedRun& run, const SplitData& split,
                                const std::vector<int64_t>& positions, const AuditOptions& o,
                                uint64_t side, const std::string& what, bool elbo_only = false) {
  const NoiseSchedule schedule = NoiseSchedule::from_options(run.cfg.prior.model);
  const PredictionType type =
      parse_prediction_type(run.cfg.prior.model.prediction_type, "prior.prediction_type");
  const bool conditional = run.unet->num_classes() > 0;
  for (int64_t t : o.mia_timesteps) {
    UMBRA_CHECK(t >= 0 && t < schedule.num_timesteps(), "membership inference: t = ", t,
                " is outside the run's schedule [0, ", schedule.num_timesteps(), ")");
  }
  const int64_t n = static_cast<int64_t>(positions.size());
  return map_chunks(
      comm, n, kScoreChunk, {2}, torch::kFloat64, what, [&](int64_t begin, int64_t count) {
        torch::NoGradGuard no_grad;
        const std::vector<int64_t> pos(positions.begin() + begin,
                                       positions.begin() + begin + count);
        const Batch batch = decode_batch(split, pos, 0, DecodeOptions{});
        const uint64_t chunk = static_cast<uint64_t>(begin / kScoreChunk);
        const torch::Tensor x0 = run.autoencoder->encode(batch.images).mean * run.scale_factor;
        const torch::Tensor labels = conditional ? batch.labels : torch::Tensor();
        torch::Tensor loss = torch::zeros({count}, torch::kFloat64);
        int64_t terms = 0;
        for (size_t j = 0; j < (elbo_only ? 0 : o.mia_timesteps.size()); ++j) {
          for (int64_t s = 0; s < o.mia_noise_draws; ++s) {
            at::Generator gen = at::detail::createCPUGenerator(
                derived_seed(o.seed, 16 * side + 1, (chunk * 64 + j) * 64 + s));
            const torch::Tensor noise = torch::randn(x0.sizes(), gen);
            const torch::Tensor t = torch::full({count}, o.mia_timesteps[j], torch::kInt64);
            loss +=
                diffusion_loss(*run.unet, schedule, type, x0, labels, t, noise).to(torch::kFloat64);
            ++terms;
          }
        }
        at::Generator gen =
            at::detail::createCPUGenerator(derived_seed(o.seed, 16 * side + 2, chunk));
        const torch::Tensor elbo =
            negative_elbo_nats(*run.autoencoder, batch.images, o.elbo_draws, gen);
        if (elbo_only) loss.fill_(std::numeric_limits<double>::quiet_NaN());
        if (terms > 0) loss /= static_cast<double>(terms);
        return torch::stack({loss, elbo.to(torch::kFloat64)}, 1);
      });
}

std::vector<double> column(const torch::Tensor& t, int64_t c) {
  const torch::Tensor col = t.select(1, c).contiguous();
  return std::vector<double>(col.data_ptr<double>(), col.data_ptr<double>() + col.numel());
}

std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * v);
  return buf;
}

nlohmann::json gate(const std::string& name, bool applicable, bool passed, const std::string& rule,
                    const std::string& why) {
  return {{"name", name},
          {"applicable", applicable},
          {"passed", applicable ? nlohmann::json(passed) : nlohmann::json(nullptr)},
          {"rule", rule},
          {"why", why}};
}

// The sample grid: up to 10 images of each class, one class per row.
void write_sample_grid(const std::string& path, const torch::Tensor& images,
                       const torch::Tensor& labels) {
  if (!labels.defined()) {
    const int64_t n = std::min<int64_t>(images.size(0), 100);
    save_image_grid(path, images.slice(0, 0, n), 10);
    return;
  }
  std::vector<torch::Tensor> rows;
  const int64_t classes = labels.max().item<int64_t>() + 1;
  const torch::Tensor blank = torch::full_like(images[0], -1.0);
  for (int64_t c = 0; c < classes; ++c) {
    const torch::Tensor idx = (labels == c).nonzero().flatten();
    for (int64_t i = 0; i < 10; ++i) {
      rows.push_back(i < idx.size(0) ? images[idx[i].item<int64_t>()] : blank);
    }
  }
  save_image_grid(path, torch::stack(rows), 10);
}

std::function<void(int64_t, double)> epoch_progress(const std::string& what, int64_t epochs) {
  const auto t0 = Clock::now();
  return [what, epochs, t0](int64_t epoch, double accuracy) {
    spdlog::info("audit: {}: epoch {}/{}, validation accuracy {:.3f} ({:.1f} s)", what, epoch,
                 epochs, accuracy, seconds_since(t0));
  };
}

}  // namespace

void AuditOptions::resolve() {
  UMBRA_USAGE_CHECK(samples >= 2, "--samples ", samples, ": expected at least 2");
  UMBRA_USAGE_CHECK(flag_rate_margin >= 0 && flag_rate_margin < 1, "--flag-rate-margin ",
                    flag_rate_margin, ": expected a rate in [0, 1)");
  UMBRA_USAGE_CHECK(members >= 2, "--members ", members, ": expected at least 2");
  UMBRA_USAGE_CHECK(classifier_epochs >= 1 && downstream_epochs >= 1,
                    "--classifier-epochs/--downstream-epochs: expected at least 1");
  UMBRA_USAGE_CHECK(canary_guesses >= 0, "--canary-guesses ", canary_guesses,
                    ": expected a number of guesses >= 1 (0: the default)");
  if (out_dir.empty()) out_dir = run_dir + "/audit";
  if (quick) {
    members = std::min<int64_t>(members, 200);
    classifier_epochs = 1;
    downstream_epochs = std::min<int64_t>(downstream_epochs, 3);
    elbo_draws = 1;
    mia_noise_draws = 1;
  }
}

nlohmann::json run_audit(AuditOptions o, Communicator& comm) {
  o.resolve();
  const auto t_start = Clock::now();
  const bool writer = comm.rank() == 0;
  nlohmann::json summary;
  nlohmann::json timings;

  TrainedRun run = load_trained_run(o.run_dir, /*require_prior=*/true);
  UMBRA_USAGE_CHECK(o.canary_guesses <= run.cfg.data.canaries.count, "--canary-guesses ",
                    o.canary_guesses, ": the run has only ", run.cfg.data.canaries.count,
                    " canaries to guess (data.canaries.count)");
  const std::string data_dir = o.data_dir.empty() ? run.cfg.data.path : o.data_dir;
  UMBRA_CHECK(!data_dir.empty(), o.run_dir,
              "/config.yaml: data.path is empty; pass --data DIR (the packed dataset)");
  const RunPrivacy privacy = read_run_privacy(run.autoencoder_state, run.prior_state);
  spdlog::info("audit: run {} ({} rank(s)); privacy: {}", o.run_dir, comm.size(),
               privacy.statement);

  const SplitData train = load_split(data_dir, "train");
  const Manifest manifest = Manifest::load(data_dir);
  UMBRA_CHECK(manifest.splits.count("test"), data_dir,
              "/manifest.json: the audit needs a held-out 'test' split (the memorisation null "
              "and the membership non-members); this dataset has none");
  const SplitData test = load_split(data_dir, "test");
  const auto& ae = run.cfg.autoencoder.model;
  UMBRA_CHECK(train.meta.channels == ae.in_channels && train.meta.height == ae.image_size &&
                  train.meta.width == ae.image_size,
              data_dir, ": images are ", train.meta.channels, "x", train.meta.height, "x",
              train.meta.width, " but the run's autoencoder expects ", ae.in_channels, "x",
              ae.image_size, "x", ae.image_size);
  CarliniOptions carlini;
  UMBRA_CHECK(train.count() >= carlini.k, data_dir, ": the training split has ", train.count(),
              " images; the memorisation check needs at least k = ", carlini.k);
  // The run's canaries (step 4), rebuilt now so that a run record that disagrees fails early.
  const std::optional<RunCanaries> canaries =
      load_run_canaries(o.run_dir, run.cfg.data.canaries, train.meta, test);
  // Held-out images for the null and the non-members: the test split without the images that
  // relabel canaries took (an included one was trained on).
  const std::vector<int64_t> heldout_pool =
      heldout_test_positions(run.cfg.data.canaries, test.count());
  const int64_t heldout_count = static_cast<int64_t>(heldout_pool.size());
  UMBRA_CHECK(heldout_count > 0, data_dir,
              ": no held-out test image is left for the audit (the relabel canaries took all ",
              test.count(), ")");
  if (writer) fs::create_directories(o.out_dir);

  // 1. Samples.
  auto t0 = Clock::now();
  const int64_t classes = run.unet->num_classes();
  torch::Tensor labels;
  if (classes > 0) {
    labels = std::get<0>(torch::arange(o.samples, torch::kInt64).remainder(classes).sort());
  }
  const SamplerOptions sampling = run.cfg.prior.sampling;
  spdlog::info("audit: generating {} samples ({} with {} steps, guidance {})", o.samples,
               sampling.sampler, sampling.num_inference_steps, sampling.guidance_scale);
  const std::vector<int64_t> image_shape = {ae.in_channels, ae.image_size, ae.image_size};
  const torch::Tensor samples = map_chunks(
      comm, o.samples, kSampleChunk, image_shape, torch::kFloat32, "generating samples",
      [&](int64_t begin, int64_t count) {
        const torch::Tensor l = labels.defined() ? labels.slice(0, begin, begin + count) : labels;
        return generate_images(run, count, l, sampling, o.seed + static_cast<uint64_t>(begin));
      });
  timings["samples"] = seconds_since(t0);
  summary["samples"] = {{"count", o.samples},
                        {"classes", classes},
                        {"class_balanced", classes > 0},
                        {"sampler", sampling.sampler},
                        {"num_inference_steps", sampling.num_inference_steps},
                        {"guidance_scale", sampling.guidance_scale},
                        {"eta", sampling.eta},
                        {"seed", o.seed},
                        {"grid", "samples.png"}};
  if (writer) write_sample_grid(o.out_dir + "/samples.png", samples, labels);

  // 2. Memorisation: this rank's slice of the training split.
  t0 = Clock::now();
  const std::vector<int64_t> distinct = distinct_image_positions(train);
  const int64_t n_distinct = static_cast<int64_t>(distinct.size());
  UMBRA_CHECK(n_distinct >= carlini.k, "audit: the training split of ", data_dir, " holds ",
              n_distinct,
              " distinct images; the memorisation check needs at least k = ", carlini.k);
  const auto [tb, te] = rank_slice(n_distinct, comm.rank(), comm.size());
  const std::vector<int64_t> slice_pos(distinct.begin() + tb, distinct.begin() + te);
  const Batch slice = decode_batch(train, slice_pos, 0, DecodeOptions{});
  const int64_t null_count = std::min(o.samples, heldout_count);
  const torch::Tensor heldout = decode_positions(test, spread_over(heldout_pool, null_count));
  spdlog::info(
      "audit: memorisation: k-NN of {} samples and {} held-out images over {} distinct training "
      "images of {} ({} on this rank)",
      o.samples, null_count, n_distinct, train.count(), te - tb);
  const MemorizationReport mem =
      memorization_check(samples, heldout, slice.images, slice.ids, carlini, &comm);
  timings["memorization"] = seconds_since(t0);
  const double gen_rate = mem.generated_flag_rate(), null_rate = mem.null_flag_rate();
  nlohmann::json mj = mem.to_json(20);
  mj["training_images"] = train.count();
  mj["distinct_training_images"] = n_distinct;
  mj["flag_rate_margin"] = o.flag_rate_margin;
  mj["worst_pairs"] = "worst_pairs.png";
  mj["training_images_redacted"] = !o.include_training_images;
  summary["memorization"] = mj;
  if (writer) {
    std::unordered_map<int64_t, int64_t> position_of;
    for (int64_t i = 0; i < train.count(); ++i) position_of[train.ids[i]] = i;
    const TrainingImageLookup lookup = [&](const std::vector<int64_t>& ids) {
      std::vector<int64_t> pos;
      for (int64_t id : ids) pos.push_back(position_of.at(id));
      return decode_positions(train, pos);
    };
    write_worst_pairs(o.out_dir + "/worst_pairs.png", samples, mem.generated, 16,
                      o.include_training_images, lookup);
  }

  // 3. Membership inference.
  t0 = Clock::now();
  const int64_t m = std::min({o.members, train.count(), heldout_count});
  spdlog::info("audit: membership inference: {} members vs {} held-out non-members", m, m);
  const torch::Tensor member_scores = membership_scores(
      comm, run, train, spread_positions(train.count(), m), o, 0, "membership scores (members)");
  const torch::Tensor nonmember_scores = membership_scores(
      comm, run, test, spread_over(heldout_pool, m), o, 1, "membership scores (non-members)");
  timings["membership"] = seconds_since(t0);
  const MembershipResult mia_diff =
      evaluate_membership(column(member_scores, 0), column(nonmember_scores, 0));
  const MembershipResult mia_elbo =
      evaluate_membership(column(member_scores, 1), column(nonmember_scores, 1));
  nlohmann::json dj = mia_diff.to_json();
  dj["score"] = "diffusion loss (mean over t and noise draws; lower = member)";
  dj["t"] = o.mia_timesteps;
  dj["noise_draws_per_t"] = o.mia_noise_draws;
  dj["roc"] = "roc_diffusion.svg";
  nlohmann::json ej = mia_elbo.to_json();
  ej["score"] = "autoencoder -ELBO in nats (lower = member)";
  ej["latent_draws"] = o.elbo_draws;
  ej["roc"] = "roc_elbo.svg";
  summary["membership"] = {{"diffusion", dj}, {"elbo", ej}};
  if (writer) {
    write_roc_svg(o.out_dir + "/roc_diffusion.svg", mia_diff, "Diffusion loss");
    write_roc_svg(o.out_dir + "/roc_elbo.svg", mia_elbo, "Autoencoder ELBO");
  }

  // 4. Canaries: every canary (IN or OUT) rebuilt and scored like the membership candidates.
  t0 = Clock::now();
  if (!canaries) {
    summary["canaries"] = no_canaries_summary();
  } else {
    const SplitData& cs = canaries->canaries;
    spdlog::info("audit: canaries: scoring {} '{}' canaries", cs.count(), canaries->options.kind);
    std::vector<int64_t> all(static_cast<size_t>(cs.count()));
    std::iota(all.begin(), all.end(), 0);
    const torch::Tensor scores = membership_scores(comm, run, cs, all, o, 2, "canary scores");
    // The same latent and noise draws (side 2) for every view: the difference then carries no
    // sampling noise of its own.
    std::vector<std::vector<double>> view_losses;
    for (const SplitData& view : canary_reference_views(cs)) {
      view_losses.push_back(
          column(membership_scores(comm, run, view, all, o, 2, "canary reference views",
                                   /*elbo_only=*/true),
                 1));
    }
    // Primary (gated): the autoencoder's -ELBO calibrated by the canary's reference views
    // (audit/canary_audit.h). The raw -ELBO and the prior's loss at the canary's label (the
    // wrong one for relabel canaries) are reported next to it, not gated: taking the largest of
    // several 95% bounds would no longer be a 95% bound.
    nlohmann::json cj = canary_summary(
        *canaries, calibrated_canary_losses(column(scores, 1), view_losses), o.canary_guesses,
        privacy,
        "autoencoder -ELBO in nats minus its mean over the canary's " +
            std::to_string(view_losses.size()) + " flipped and rotated views (lower = guessed IN)");
    cj["latent_draws"] = o.elbo_draws;
    cj["reference_views"] = static_cast<int64_t>(view_losses.size());
    nlohmann::json rj = canary_summary(*canaries, column(scores, 1), o.canary_guesses, privacy,
                                       "autoencoder -ELBO in nats, uncalibrated");
    nlohmann::json dj = canary_summary(*canaries, column(scores, 0), o.canary_guesses, privacy,
                                       "diffusion loss at the canary's label (lower = guessed IN)");
    cj["secondary"] = {{"score", dj["score"]},
                       {"correct", dj["correct"]},
                       {"epsilon_lower_bound", dj["epsilon_lower_bound"]},
                       {"gated", false}};
    cj["uncalibrated"] = {{"score", rj["score"]},
                          {"correct", rj["correct"]},
                          {"epsilon_lower_bound", rj["epsilon_lower_bound"]},
                          {"gated", false}};
    summary["canaries"] = cj;
  }
  timings["canaries"] = seconds_since(t0);
  comm.barrier("audit: end of the collective steps");
  if (!writer) return summary;

  // 5. Quality (rank 0 only).
  t0 = Clock::now();
  nlohmann::json quality;
  if (!o.quality) {
    quality = {{"skipped", true}, {"why", "--no-quality"}};
  } else {
    const int64_t real_count = o.quick ? std::min<int64_t>(1000, test.count()) : test.count();
    const Batch real = decode_batch(test, spread_positions(test.count(), real_count), 0, {});
    const int64_t feat_train = o.quick ? std::min<int64_t>(2000, train.count()) : train.count();
    const Batch ftrain =
        decode_batch(train, spread_positions(train.count(), feat_train), 0, DecodeOptions{});
    ClassifierOptions copt;
    copt.epochs = o.classifier_epochs;
    copt.num_classes = train.meta.num_classes();
    copt.seed = o.seed;
    copt.on_epoch = epoch_progress("feature classifier", copt.epochs);
    spdlog::info(
        "audit: quality: training the feature classifier on {} real training images "
        "({} epoch(s))",
        feat_train, copt.epochs);
    TrainedClassifier feature = train_downstream_classifier(ftrain.images, ftrain.labels, copt);
    const double real_acc = classifier_accuracy(feature.model, real.images, real.labels);
    const FeatureMetrics fm = feature_metrics(feature.model, real.images, samples);
    quality = fm.to_json();
    quality["feature_classifier"] = {
        {"what",
         "DPDM CNN trained on the real training split; 128-d penultimate features; "
         "NOT Inception-FID, comparable only with FID-proxy values from the same "
         "classifier settings"},
        {"train_images", feat_train},
        {"epochs", copt.epochs},
        {"seed", copt.seed},
        {"real_test_accuracy", real_acc}};
    if (classes > 0) {
      ClassifierOptions dopt;
      dopt.epochs = o.downstream_epochs;
      dopt.num_classes = classes;
      dopt.seed = o.seed + 1;
      dopt.on_epoch = epoch_progress("downstream CNN", dopt.epochs);
      spdlog::info("audit: quality: downstream CNN on {} samples ({} epoch(s))", o.samples,
                   dopt.epochs);
      const DownstreamResult dr =
          downstream_accuracy(samples, labels, real.images, real.labels, dopt);
      quality["downstream"] = dr.to_json();
      quality["downstream"]["note"] =
          "trained on the audit's generated samples; the published DPDM figures use 60,000 "
          "samples and 50 epochs";
    } else {
      quality["downstream"] = {{"skipped", true},
                               {"why", "unconditional model: the samples have no labels"}};
    }
  }
  timings["quality"] = seconds_since(t0);
  summary["quality"] = quality;

  // Gates.
  nlohmann::json gates = nlohmann::json::array();
  {
    const bool ok = gen_rate <= null_rate + o.flag_rate_margin;
    gates.push_back(
        gate("memorization", true, ok,
             "generated flag rate <= held-out null flag rate + " + pct(o.flag_rate_margin),
             "generated " + pct(gen_rate) + " (" + std::to_string(mem.generated.num_flagged()) +
                 "/" + std::to_string(mem.generated.num_queries()) + ") vs null " + pct(null_rate) +
                 " (" + std::to_string(mem.heldout.num_flagged()) + "/" +
                 std::to_string(mem.heldout.num_queries()) + ")"));
  }
  {
    // The accountant's epsilon is an upper bound on the leakage, the canary bound a lower bound:
    // a lower bound above it means broken DP or accounting.
    const nlohmann::json& cj = summary["canaries"];
    const bool applicable = privacy.dp && cj["present"] == true;
    const std::string rule = "DP runs: one-run empirical epsilon lower bound <= accountant epsilon";
    if (applicable) {
      const double lb = cj["epsilon_lower_bound"].get<double>();
      char why[160];
      std::snprintf(why, sizeof why, "epsilon lower bound %.4f vs accountant epsilon %.4f", lb,
                    privacy.epsilon);
      gates.push_back(gate("canaries", true, lb <= privacy.epsilon, rule, why));
    } else {
      gates.push_back(gate("canaries", false, true, rule,
                           cj["present"] == true ? "not a DP run" : cj["why"].get<std::string>()));
    }
  }
  if (privacy.dp && privacy.target_epsilon > 0) {
    const bool ok = privacy.epsilon <= privacy.target_epsilon * (1 + 1e-9);
    char why[160];
    std::snprintf(why, sizeof why, "recomputed epsilon %.4f vs target %.4f", privacy.epsilon,
                  privacy.target_epsilon);
    gates.push_back(
        gate("accounting", true, ok, "DP runs: recomputed epsilon <= privacy.target_epsilon", why));
  } else {
    gates.push_back(gate("accounting", false, true,
                         "DP runs: recomputed epsilon <= privacy.target_epsilon",
                         privacy.dp ? "no target epsilon configured" : "not a DP run"));
  }
  bool passed = true;
  std::string failed;
  for (const auto& g : gates) {
    if (g["applicable"].get<bool>() && !g["passed"].get<bool>()) {
      passed = false;
      failed += (failed.empty() ? "" : ", ") + g["name"].get<std::string>();
    }
  }

  nlohmann::json full;
  full["format_version"] = 1;
  full["tool"] = "umbra audit 0.1.0";
  full["created"] = now_utc();
  full["run"] = fs::absolute(o.run_dir).lexically_normal().string();
  full["data"] = data_dir;
  full["world_size"] = comm.size();
  full["checkpoints"] = {{"autoencoder", checkpoint_info(run.autoencoder_state)},
                         {"prior", checkpoint_info(run.prior_state)}};
  full["options"] = {{"samples", o.samples},
                     {"seed", o.seed},
                     {"quick", o.quick},
                     {"include_training_images", o.include_training_images},
                     {"members", o.members},
                     {"flag_rate_margin", o.flag_rate_margin},
                     {"classifier_epochs", o.classifier_epochs},
                     {"downstream_epochs", o.downstream_epochs},
                     {"canary_guesses", o.canary_guesses}};
  full["privacy"] = privacy.to_json();
  for (auto& [key, value] : summary.items()) full[key] = value;
  full["gates"] = gates;
  full["gates_help"] = audit_gates_help();
  full["passed"] = passed;
  full["verdict"] = passed ? "PASS" : "FAIL: " + failed;
  timings["total"] = seconds_since(t_start);
  full["seconds"] = timings;
  write_text_atomic(o.out_dir + "/summary.json", full.dump(2) + "\n");
  write_text_atomic(o.out_dir + "/index.html", audit_html(full));
  spdlog::info("audit: wrote {}/summary.json and index.html ({:.1f} s)", o.out_dir,
               timings["total"].get<double>());
  return full;
}

}  // namespace umbra
