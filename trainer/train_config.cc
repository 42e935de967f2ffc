#include "trainer/train_config.h"

#include "core/check.h"
#include "core/sha256.h"

namespace umbra {

void TrainConfig::validate() const {
  autoencoder.model.validate();
  data.canaries.validate();
  prior.model.validate();
  UMBRA_CHECK(!data.path.empty(),
              "config key 'data.path': expected the dataset directory written "
              "by `umbra pack`, got nothing");
  // A scale computed as 1/std of the training latents is a statistic of the private data that
  // no accountant covers: under DP the scale must be fixed in advance (or from public data).
  UMBRA_CHECK(!privacy.enabled || stage == "autoencoder" || prior.model.scale_factor > 0,
              "config key 'prior.scale_factor': 0 (compute 1/std of the training latents) reads "
              "the private data outside the privacy accounting; with privacy.enabled set a fixed "
              "value (e.g. 1.0, or the value of a non-private run on public data)");
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config cfg =
      path.empty() ? Config::from_string("", "defaults", overrides) : Config::load(path, overrides);
  TrainConfig out;
  bind_options(cfg, out);
  cfg.finish();
  return out;
}

std::string resolved_yaml(const TrainConfig& cfg) {
  return "# Resolved Umbra configuration (every key, defaults included).\n" + options_to_yaml(cfg);
}

std::string public_yaml(const TrainConfig& cfg) {
  TrainConfig redacted = cfg;
  const bool sealed = redacted.data.canaries.seed >= 0;
  redacted.data.canaries.seed = -1;
  return resolved_yaml(redacted) +
         (sealed ? "# data.canaries.seed is redacted (-1): it is the canary audit's secret.\n"
                 : "");
}

std::string config_hash(const TrainConfig& cfg) {
  const std::string yaml = options_to_yaml(cfg);
  return sha256_hex(yaml.data(), yaml.size());
}

}  // namespace umbra
