#include "audit/run_privacy.h"

#include <cmath>
#include <cstdio>

#include "core/check.h"

namespace umbra {
namespace {

StagePrivacyRecord stage_record(const std::string& stage, const nlohmann::json& state) {
  StagePrivacyRecord r;
  r.stage = stage;
  r.checkpoint = state.value("checkpoint", std::string("<unknown checkpoint>"));
  r.step = state.contains("step") && state["step"].is_number_integer()
               ? state["step"].get<int64_t>()
               : 0;
  if (state.contains("privacy") && !state["privacy"].is_null()) {
    r.block = state["privacy"];
    UMBRA_CHECK(r.block.is_object(), r.checkpoint, "/state.json: 'privacy' must be an object, got ",
                r.block.dump());
    UMBRA_CHECK(!r.block.contains("enabled") || r.block["enabled"].is_boolean(), r.checkpoint,
                "/state.json: privacy.enabled must be true or false, got ",
                r.block["enabled"].dump());
    r.enabled = r.block.value("enabled", false);
  }
  return r;
}

double number(const StagePrivacyRecord& r, const char* key) {
  UMBRA_CHECK(r.block.contains(key) && r.block[key].is_number(), r.checkpoint,
              "/state.json: privacy.", key, " must be a number, got ",
              r.block.contains(key) ? r.block[key].dump() : std::string("nothing"));
  return r.block[key].get<double>();
}

nlohmann::json value_or_null(const nlohmann::json& block, const char* key) {
  return block.is_object() && block.contains(key) ? block[key] : nlohmann::json(nullptr);
}

std::string fmt(double v, const char* format = "%.4g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

Accountant stage_accountant(const StagePrivacyRecord& r) {
  UMBRA_CHECK(r.block.contains("accountant"), r.checkpoint,
              "/state.json: privacy.accountant is missing (the accountant history)");
  return Accountant::from_json(r.block["accountant"], r.checkpoint + "/state.json: privacy");
}

}  // namespace

RunPrivacy read_run_privacy(const nlohmann::json& ae_state, const nlohmann::json& prior_state) {
  RunPrivacy p;
  p.stages.push_back(stage_record("autoencoder", ae_state));
  if (!prior_state.is_null()) p.stages.push_back(stage_record("prior", prior_state));

  std::string non_private;
  for (const auto& s : p.stages) {
    if (!s.enabled) non_private += (non_private.empty() ? "" : " and ") + s.stage;
  }
  p.dp = non_private.empty();
  if (!p.dp) {
    p.statement = "No differential-privacy guarantee: the " + non_private +
                  (non_private.find(" and ") == std::string::npos ? " stage was" : " stages were") +
                  " trained without DP-SGD on the private training images.";
    return p;
  }

  // The newest stage's block carries the composed history.
  const StagePrivacyRecord& last = p.stages.back();
  Accountant accountant = stage_accountant(last);
  if (p.stages.size() == 2) {
    const Accountant ae = stage_accountant(p.stages.front());
    if (accountant.stage_steps("autoencoder") < ae.stage_steps("autoencoder")) {
      std::vector<AccountantEntry> composed;
      for (const auto& e : ae.history()) {
        if (e.stage == "autoencoder") composed.push_back(e);
      }
      for (const auto& e : accountant.history()) {
        if (e.stage != "autoencoder") composed.push_back(e);
      }
      accountant = Accountant(accountant.kind(), composed);
      p.composed_by_audit = true;
    }
  }
  p.history = accountant.history();
  p.accountant = accountant_kind_name(accountant.kind());
  p.delta = number(last, "delta");
  validate_delta(p.delta);
  p.epsilon = accountant.epsilon(p.delta);
  if (last.block.contains("epsilon") && last.block["epsilon"].is_number()) {
    p.epsilon_recorded = last.block["epsilon"].get<double>();
  }
  if (last.block.contains("target_epsilon") && last.block["target_epsilon"].is_number()) {
    p.target_epsilon = last.block["target_epsilon"].get<double>();
  }
  if (last.block.contains("num_samples") && last.block["num_samples"].is_number_integer()) {
    p.num_samples = last.block["num_samples"].get<int64_t>();
  }
  std::string per_stage;
  for (const auto& s : p.stages) {
    per_stage +=
        (per_stage.empty() ? "" : "; ") + s.stage + ": σ = " + fmt(number(s, "noise_multiplier")) +
        ", C = " + fmt(number(s, "max_grad_norm")) + ", q = " + fmt(number(s, "sample_rate")) +
        ", " + std::to_string(accountant.stage_steps(s.stage)) + " steps";
  }
  p.statement = "(" + fmt(p.epsilon, "%.3f") + ", " + fmt(p.delta, "%.3g") +
                ")-differential privacy for each training image (add/remove-one adjacency, "
                "Poisson sampling), both stages composed by the " +
                (p.accountant == "rdp" ? std::string("RDP") : std::string("PRV")) +
                " accountant (" + per_stage + ").";
  return p;
}

nlohmann::json RunPrivacy::to_json() const {
  nlohmann::json j;
  j["dp"] = dp;
  j["statement"] = statement;
  j["privacy_unit"] = "one training image (add/remove-one adjacency)";
  j["accountant"] = accountant;
  j["epsilon"] = dp ? nlohmann::json(epsilon) : nlohmann::json(nullptr);
  j["epsilon_recorded"] = epsilon_recorded >= 0 ? nlohmann::json(epsilon_recorded) : nullptr;
  j["delta"] = dp ? nlohmann::json(delta) : nlohmann::json(nullptr);
  j["target_epsilon"] = target_epsilon >= 0 ? nlohmann::json(target_epsilon) : nullptr;
  j["num_samples"] = num_samples > 0 ? nlohmann::json(num_samples) : nullptr;
  j["composed_by_audit"] = composed_by_audit;
  nlohmann::json hist = nlohmann::json::array();
  for (const auto& e : history) {
    hist.push_back({{"stage", e.stage},
                    {"noise_multiplier", e.noise_multiplier},
                    {"sample_rate", e.sample_rate},
                    {"steps", e.steps}});
  }
  j["history"] = hist;
  nlohmann::json st = nlohmann::json::object();
  for (const auto& s : stages) {
    st[s.stage] = {{"enabled", s.enabled},
                   {"checkpoint", s.checkpoint},
                   {"step", s.step},
                   {"stored", s.block}};
  }
  j["stages"] = st;
  return j;
}

nlohmann::json RunPrivacy::report() const {
  nlohmann::json r = to_json();
  r["sampling"] =
      dp ? "Poisson (each image in each step independently with probability q)" : "not private";
  nlohmann::json st = nlohmann::json::object();
  const Accountant a(accountant == "prv" ? AccountantKind::kPrv : AccountantKind::kRdp, history);
  for (const auto& s : stages) {
    const nlohmann::json& b = s.block;
    nlohmann::json e;
    e["enabled"] = s.enabled;
    e["noise_multiplier"] = s.enabled ? value_or_null(b, "noise_multiplier") : nullptr;
    e["max_grad_norm"] = s.enabled ? value_or_null(b, "max_grad_norm") : nullptr;
    e["sample_rate"] = s.enabled ? value_or_null(b, "sample_rate") : nullptr;
    e["steps"] = dp ? a.stage_steps(s.stage) : s.step;
    for (const char* key :
         {"expected_batch_size", "num_samples", "noise_multiplicity", "clipping", "secure_mode"}) {
      e[key] = s.enabled ? value_or_null(b, key) : nullptr;
    }
    e["checkpoint_step"] = s.step;
    st[s.stage] = e;
  }
  r["stages"] = st;
  return r;
}

}  // namespace umbra
