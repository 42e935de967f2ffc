#include "trainer/stage_privacy.h"

#include <cmath>

#include "core/check.h"
#include "privacy/calibration.h"

namespace umbra {

nlohmann::json StagePrivacy::to_json() const {
  if (!enabled) return {{"enabled", false}};
  return {{"enabled", true},
          {"accountant", accountant.to_json()},
          {"delta", options.delta},
          {"target_epsilon", options.target_epsilon},
          {"epsilon", accountant.epsilon(options.delta)},
          {"noise_multiplier", noise_multiplier},
          {"noise_multiplier_source", noise_multiplier_source},
          {"max_grad_norm", options.max_grad_norm},
          {"sample_rate", sample_rate},
          {"expected_batch_size", options.expected_batch_size},
          {"num_samples", num_samples},
          {"noise_multiplicity", noise_multiplicity},
          {"clipping", options.clipping},
          {"secure_mode", options.secure_mode}};
}

void StagePrivacy::resume_from(const nlohmann::json& saved, const std::string& origin) {
  if (!enabled) {
    UMBRA_CHECK(!saved.is_object() || !saved.value("enabled", false), origin,
                ": the checkpoint was trained with DP-SGD but privacy.enabled is false; resuming "
                "without DP would void its guarantee");
    return;
  }
  UMBRA_CHECK(saved.is_object() && saved.value("enabled", false), origin,
              ": the checkpoint was trained without DP-SGD; it cannot be resumed with "
              "privacy.enabled (its updates were not private)");
  const double saved_q = saved.at("sample_rate").get<double>();
  UMBRA_CHECK(std::abs(saved_q - sample_rate) <= 1e-12 * sample_rate, origin,
              ": trained with sample rate q = ", saved_q,
              " but the configuration gives q = ", sample_rate,
              " (privacy.expected_batch_size or the dataset changed)");
  const double saved_c = saved.at("max_grad_norm").get<double>();
  UMBRA_CHECK(saved_c == options.max_grad_norm, origin,
              ": trained with privacy.max_grad_norm = ", saved_c, " but the configuration says ",
              options.max_grad_norm);
  accountant = Accountant::from_json(saved.at("accountant"), origin + " privacy.accountant");
  noise_multiplier = saved.at("noise_multiplier").get<double>();
  noise_multiplier_source = "resumed from " + origin;
}

StagePrivacy plan_stage_privacy(const PrivacyOptions& options, const std::string& stage,
                                int64_t num_samples, int64_t noise_multiplicity,
                                const nlohmann::json& earlier, int64_t planned_steps) {
  StagePrivacy p;
  p.enabled = options.enabled;
  p.options = options;
  p.stage = stage;
  p.num_samples = num_samples;
  p.noise_multiplicity = noise_multiplicity;
  p.accountant = Accountant(parse_accountant_kind(options.accountant));
  if (!options.enabled) {
    UMBRA_CHECK(!earlier.is_object() || !earlier.value("enabled", false),
                "privacy.enabled is false but the stage-1 autoencoder was trained with DP-SGD; "
                "set privacy.enabled=true to train the prior privately too");
    return p;
  }
  options.validate(num_samples);
  check_delta_for_dataset(options.delta, num_samples);
  p.sample_rate = options.sample_rate(num_samples);
  if (earlier.is_object()) {
    UMBRA_CHECK(earlier.value("enabled", false),
                "privacy.enabled: the stage-1 autoencoder was trained WITHOUT DP-SGD on the same "
                "private data, so a DP prior would not make the model private; train the "
                "autoencoder with privacy.enabled=true (stage=both)");
    p.resume_from(earlier, "the stage-1 autoencoder checkpoint");
    p.noise_multiplier_source = "the stage-1 autoencoder's (one sigma for both stages)";
    return p;
  }
  if (options.noise_multiplier > 0) {
    p.noise_multiplier = options.noise_multiplier;
    p.noise_multiplier_source = "privacy.noise_multiplier";
    return p;
  }
  const CalibrationResult c =
      calibrate_noise_multiplier(p.accountant.kind(), options.target_epsilon, options.delta,
                                 p.sample_rate, planned_steps, p.accountant.history());
  p.noise_multiplier = c.noise_multiplier;
  p.noise_multiplier_source = "calibrated for " + std::to_string(planned_steps) +
                              " steps at q = " + std::to_string(p.sample_rate) +
                              " to meet privacy.target_epsilon";
  return p;
}

}  // namespace umbra
