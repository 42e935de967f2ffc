#include "audit/release_run.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "audit/release.h"
#include "audit/text_file.h"
#include "core/check.h"
#include "core/log.h"
#include "core/png.h"
#include "core/sha256.h"
#include "trainer/trained_run.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

std::string num(const nlohmann::json& v, const char* format = "%.4g") {
  if (!v.is_number()) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v.get<double>());
  return buf;
}

std::string pct(const nlohmann::json& v) {
  if (!v.is_number()) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * v.get<double>());
  return buf;
}

const nlohmann::json& at(const nlohmann::json& j, std::initializer_list<const char*> path) {
  static const nlohmann::json kNull = nullptr;
  const nlohmann::json* p = &j;
  for (const char* key : path) {
    if (!p->is_object() || !p->contains(key)) return kNull;
    p = &(*p)[key];
  }
  return *p;
}

int64_t parameter_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::string ema_path(const nlohmann::json& state, const std::string& stage) {
  UMBRA_CHECK(state.contains("checkpoint") && state["checkpoint"].is_string(), stage,
              ": the loaded state.json does not name its checkpoint directory");
  const std::string path = state["checkpoint"].get<std::string>() + "/ema.safetensors";
  UMBRA_CHECK(fs::is_regular_file(path), path, ": missing (the EMA weights of the ", stage,
              " stage)");
  return path;
}

}  // namespace

std::string model_card(const std::string& config_yaml, const nlohmann::json& info,
                       const RunPrivacy& privacy, const nlohmann::json& audit,
                       const std::vector<std::string>& overridden) {
  std::ostringstream c;
  c << "# Model card: " << info.value("name", std::string("umbra model")) << "\n\n";
  if (!overridden.empty()) {
    c << "> **Released with `--force`.** The release checks refused this model: ";
    for (size_t i = 0; i < overridden.size(); ++i) c << (i ? "; " : "") << overridden[i];
    c << ". Read the audit results below before using it.\n\n";
  }
  c << "## What this model is\n\n"
    << "A latent diffusion model trained with Umbra: a KL-regularised convolutional autoencoder "
       "(stage 1, "
    << info["autoencoder_parameters"].get<int64_t>()
    << " parameters) maps images to latents, and a class-conditional UNet diffusion prior (stage "
       "2, "
    << info["prior_parameters"].get<int64_t>()
    << " parameters, classifier-free guidance) generates latents that the decoder turns into "
       "images. Weights are the exponential-moving-average weights of each stage's final "
       "checkpoint, in safetensors format (`weights/`); the resolved training configuration is "
       "`config.yaml`.\n\n"
    << "- images: " << info["image"].get<std::string>() << ", " << info["classes"].get<int64_t>()
    << " classes\n"
    << "- autoencoder checkpoint step " << info["autoencoder_step"].get<int64_t>()
    << ", prior checkpoint step " << info["prior_step"].get<int64_t>() << "\n\n";

  c << "## Training data\n\n"
    << "The `train` split of the packed dataset `" << info["data"].get<std::string>() << "` ("
    << info["train_images"].get<int64_t>()
    << " images). Its held-out `test` split was used only by the audit.\n\n";

  c << "## Privacy guarantee\n\n";
  if (privacy.dp) {
    const Accountant acc(privacy.accountant == "prv" ? AccountantKind::kPrv : AccountantKind::kRdp,
                         privacy.history);
    c << "This model (both stages composed) satisfies **(ε = " << num(privacy.epsilon, "%.3f")
      << ", δ = " << num(privacy.delta, "%.3g")
      << ")-differential privacy**. The privacy unit is **one training image**: adding or "
         "removing any single image from the training set changes the probability of any "
         "outcome of training (and of anything computed from these weights) by at most a factor "
         "e^ε, except with probability δ. Both stages trained with DP-SGD on the same images: "
         "Poisson sampling (each image joins each step independently with probability q), "
         "per-image gradients clipped to norm C, Gaussian noise of standard deviation σ·C added "
         "to each step's summed gradient. ε is computed over the whole history by the "
      << (privacy.accountant == "prv" ? "PRV (privacy loss distribution)" : "RDP (Rényi DP)")
      << " accountant and recomputed at release time";
    if (privacy.epsilon_recorded >= 0) {
      c << " (the trainer recorded ε = " << num(privacy.epsilon_recorded, "%.4f") << ")";
    }
    if (privacy.target_epsilon > 0) c << "; the target was ε = " << num(privacy.target_epsilon);
    c << ".\n\n| stage | σ (noise multiplier) | C (max grad norm) | q (sample rate) | steps | N "
         "|\n|---|---|---|---|---|---|\n";
    for (const auto& s : privacy.stages) {
      c << "| " << s.stage << " | " << num(at(s.block, {"noise_multiplier"})) << " | "
        << num(at(s.block, {"max_grad_norm"})) << " | " << num(at(s.block, {"sample_rate"}))
        << " | " << acc.stage_steps(s.stage) << " | " << num(at(s.block, {"num_samples"}), "%.0f")
        << " |\n";
    }
    c << "\nThe guarantee covers the training images only; the held-out test split used by the "
         "audit is not protected by it (the audit's figures are released as aggregates, and its "
         "worst-pairs picture shows no training image).\n\n";
  } else {
    c << "**No differential-privacy guarantee.** " << privacy.statement
      << " The weights may reveal individual training images; the audit below measures some of "
         "that risk but cannot rule it out.\n\n";
  }

  c << "## Audit results\n\n";
  if (!audit.is_object() || audit.contains("missing")) {
    c << "No audit was run before this release.\n\n";
  } else {
    c << "`umbra audit` (" << audit.value("created", std::string("?")) << ", "
      << num(at(audit, {"samples", "count"}), "%.0f") << " samples), verdict: **"
      << audit.value("verdict", std::string("?")) << "**.\n\n"
      << "| check | result |\n|---|---|\n"
      << "| memorisation: generated samples flagged as copies | "
      << pct(at(audit, {"memorization", "generated", "flag_rate"})) << " (held-out null "
      << pct(at(audit, {"memorization", "heldout", "flag_rate"})) << ") |\n"
      << "| membership inference, diffusion loss | AUC "
      << num(at(audit, {"membership", "diffusion", "auc"}), "%.3f") << ", TPR@1%FPR "
      << num(at(audit, {"membership", "diffusion", "tpr_at_1pct_fpr"}), "%.3f") << " |\n"
      << "| membership inference, autoencoder ELBO | AUC "
      << num(at(audit, {"membership", "elbo", "auc"}), "%.3f") << ", TPR@1%FPR "
      << num(at(audit, {"membership", "elbo", "tpr_at_1pct_fpr"}), "%.3f") << " |\n"
      << "| canary ε lower bound | "
      << (at(audit, {"canaries", "present"}) == true
              ? num(at(audit, {"canaries", "epsilon_lower_bound"}))
              : std::string("no canaries"))
      << " |\n"
      << "| FID-proxy (not Inception-FID) | " << num(at(audit, {"quality", "fid_proxy"}), "%.3f")
      << " |\n"
      << "| precision / recall (k = 3) | " << num(at(audit, {"quality", "precision"}), "%.3f")
      << " / " << num(at(audit, {"quality", "recall"}), "%.3f") << " |\n"
      << "| downstream CNN accuracy on real test images | "
      << pct(at(audit, {"quality", "downstream", "test_accuracy"})) << " |\n\n";
    if (audit.contains("gates")) {
      c << "Gates:\n\n";
      for (const auto& g : audit["gates"]) {
        const bool applicable = g["applicable"].get<bool>();
        c << "- " << g["name"].get<std::string>() << ": "
          << (!applicable               ? "not applicable"
              : g["passed"].get<bool>() ? "passed"
                                        : "FAILED")
          << " — " << g["why"].get<std::string>() << "\n";
      }
      c << "\n";
    }
    c << "Details: `audit/summary.json` and `audit/index.html`.\n\n";
  }

  c << "## Intended use and limitations\n\n"
    << "- Intended for generating synthetic images of the training classes, e.g. to train or "
       "test downstream models without access to the private images, and for research on "
       "private generative models.\n"
    << "- Sample quality is limited (see the FID-proxy and downstream accuracy above); "
       "synthetic images are not a substitute for real data in high-stakes decisions.\n"
    << "- The audit's attacks give lower bounds on leakage, not proofs of safety; only the DP "
       "guarantee above (if any) is a proof, and only for the stated privacy unit, ε and δ.\n"
    << "- Weights are safetensors (no code execution on load); check `SHA256SUMS` with `umbra "
       "release --verify DIR` before use.\n\n";
  c << "## Release\n\n"
    << (overridden.empty() ? "Released with every check passed (no `--force`).\n"
                           : "Released with `--force` over the refusals listed at the top.\n");
  (void)config_yaml;
  return c.str();
}

ReleaseRunResult release_run(ReleaseRunOptions o) {
  if (o.audit_dir.empty()) o.audit_dir = o.run_dir + "/audit";
  TrainedRun run = load_trained_run(o.run_dir, /*require_prior=*/true);
  const RunPrivacy privacy = read_run_privacy(run.autoencoder_state, run.prior_state);
  ReleaseRunResult result;
  std::vector<std::string> refusals;

  nlohmann::json audit = {{"missing", true}};
  const std::string summary_path = o.audit_dir + "/summary.json";
  if (!fs::is_regular_file(summary_path)) {
    refusals.push_back("no audit: " + summary_path + " is missing (run `umbra audit --run " +
                       o.run_dir + "` first)");
  } else {
    try {
      audit = nlohmann::json::parse(read_text_file(summary_path));
    } catch (const nlohmann::json::exception& e) {
      UMBRA_FAIL(summary_path, ": not valid JSON: ", e.what());
    }
    UMBRA_CHECK(audit.is_object() && audit.contains("passed") && audit["passed"].is_boolean() &&
                    audit.contains("gates") && audit["gates"].is_array(),
                summary_path, ": not an audit summary (expected 'passed' and 'gates')");
    if (!audit["passed"].get<bool>()) {
      std::string failed;
      for (const auto& g : audit["gates"]) {
        if (g.value("applicable", false) && g.value("passed", true) == false) {
          failed += (failed.empty() ? "" : "; ") + g.value("name", std::string("?")) + " (" +
                    g.value("why", std::string()) + ")";
        }
      }
      refusals.push_back("the audit failed gate(s): " + failed);
    }
    for (const char* stage : {"autoencoder", "prior"}) {
      const nlohmann::json& state =
          std::string(stage) == "prior" ? run.prior_state : run.autoencoder_state;
      const std::string audited = at(audit, {"checkpoints", stage, "ema_sha256"}).is_string()
                                      ? audit["checkpoints"][stage]["ema_sha256"].get<std::string>()
                                      : std::string();
      if (audited != sha256_file(ema_path(state, stage))) {
        refusals.push_back(std::string("the audit is stale: it did not audit the ") + stage +
                           " weights of " + state.value("checkpoint", std::string("?")) +
                           " (re-run `umbra audit`)");
      }
    }
  }
  if (!refusals.empty() && !o.force) {
    std::string msg;
    for (const auto& r : refusals) msg += (msg.empty() ? "" : "; ") + r;
    UMBRA_FAIL("release refused: ", msg, " (--force releases anyway and says so in the card)");
  }
  result.overridden = refusals;
  for (const auto& r : refusals) spdlog::warn("release: --force overrides: {}", r);

  ReleaseContents contents;
  contents.weights = {{"autoencoder.safetensors", ema_path(run.autoencoder_state, "autoencoder")},
                      {"prior.safetensors", ema_path(run.prior_state, "prior")}};
  // The canaries' seed is the audit's secret (who was trained on which canary): never published.
  // <run>/canaries.json, which also holds it, is not part of the bundle.
  contents.config_yaml = run.cfg.data.canaries.seed >= 0
                             ? public_yaml(run.cfg)
                             : read_text_file(o.run_dir + "/config.yaml");
  contents.privacy_report = privacy.report();
  contents.audit_summary = audit;
  const bool redacted = at(audit, {"memorization", "training_images_redacted"}) != false;
  for (const char* name : {"index.html", "roc_diffusion.svg", "roc_elbo.svg", "worst_pairs.png"}) {
    const std::string path = o.audit_dir + "/" + name;
    if (std::string(name) == "worst_pairs.png" && !redacted) {
      spdlog::warn("release: leaving out {}: it shows training images (--include-training-images)",
                   path);
      continue;
    }
    if (!audit.contains("missing") && fs::is_regular_file(path)) {
      contents.audit_files.push_back({name, path});
    }
  }
  std::string grid = o.audit_dir + "/samples.png";
  fs::path tmp_grid;
  if (audit.contains("missing") || !fs::is_regular_file(grid)) {
    tmp_grid =
        fs::temp_directory_path() / ("umbra-release-grid-" + std::to_string(::getpid()) + ".png");
    const int64_t classes = run.unet->num_classes();
    const int64_t n = 40;
    torch::Tensor labels;
    if (classes > 0) {
      labels = std::get<0>(torch::arange(n, torch::kInt64).remainder(classes).sort());
    }
    save_image_grid(tmp_grid.string(), generate_images(run, n, labels, run.cfg.prior.sampling, 0),
                    classes > 0 ? std::max<int64_t>(1, n / classes) : 8);
    grid = tmp_grid.string();
  }
  contents.sample_grid = grid;

  const auto& ae = run.cfg.autoencoder.model;
  nlohmann::json info = {
      {"name", run.cfg.run.name},
      {"data", run.cfg.data.path},
      {"image", std::to_string(ae.in_channels) + "x" + std::to_string(ae.image_size) + "x" +
                    std::to_string(ae.image_size)},
      {"classes", run.unet->num_classes()},
      {"autoencoder_parameters", parameter_count(*run.autoencoder)},
      {"prior_parameters", parameter_count(*run.unet)},
      {"autoencoder_step", run.autoencoder_state.value("step", int64_t{0})},
      {"prior_step", run.prior_state.value("step", int64_t{0})},
      {"train_images", at(audit, {"memorization", "training_images"}).is_number_integer()
                           ? audit["memorization"]["training_images"].get<int64_t>()
                           : privacy.num_samples}};
  contents.model_card = model_card(contents.config_yaml, info, privacy, audit, refusals);
  try {
    result.files = write_release(o.out_dir, contents);
  } catch (...) {
    if (!tmp_grid.empty()) fs::remove(tmp_grid);
    throw;
  }
  if (!tmp_grid.empty()) fs::remove(tmp_grid);
  return result;
}

}  // namespace umbra
