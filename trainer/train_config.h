// The whole configuration of `umbra train` (DESIGN.md §11): every section's options struct,
// bound from YAML + overrides in one visit, written back resolved to <run>/config.yaml, and
// documented in configs/README.md (`umbra config --doc`).
#pragma once

#include <string>

#include "comm/comm_options.h"
#include "core/config.h"
#include "core/run_options.h"
#include "data/canaries.h"
#include "data/loader.h"
#include "models/autoencoder_options.h"
#include "models/prior_options.h"
#include "models/samplers.h"
#include "monitoring/monitoring_options.h"
#include "privacy/privacy_options.h"
#include "trainer/optimizer.h"

namespace umbra {

// Training knobs shared by both stages (inside the autoencoder.* and prior.* sections).
struct StageTrainOptions {
  int64_t batch_size = 64;
  int64_t max_steps = 1000;
  OptimizerOptions optimizer;
  double ema_decay = 0.999;
  double grad_clip = 1.0;  // global-norm clipping of non-private steps (0 = off)
  int64_t log_every = 10;
  int64_t eval_every = 500;  // sample/reconstruction grid and held-out figures (0 = only at end)

  template <class V>
  void visit(V& v) {
    v("batch_size", batch_size, "Global batch size of non-private steps (over all ranks)",
      AtLeast{1});
    v("max_steps", max_steps, "Optimizer steps of this stage", AtLeast{0});
    v.section("optimizer", optimizer);
    v("ema_decay", ema_decay, "Decay of the exponential moving average used for sampling",
      InRange{0, 1});
    v("grad_clip", grad_clip, "Global gradient-norm clipping of non-private steps (0 = off)",
      AtLeast{0});
    v("log_every", log_every, "Steps between metric log lines", AtLeast{1});
    v("eval_every", eval_every,
      "Steps between evaluation pictures and held-out figures (0 = only at the end)", AtLeast{0});
  }
};

struct AutoencoderStageOptions {
  AutoencoderOptions model;
  StageTrainOptions train;
  template <class V>
  void visit(V& v) {
    model.visit(v);
    train.visit(v);
  }
};

struct PriorStageOptions {
  PriorOptions model;
  StageTrainOptions train;
  SamplerOptions sampling;
  template <class V>
  void visit(V& v) {
    model.visit(v);
    train.visit(v);
    v.section("sampling", sampling);
  }
};

struct CheckpointOptions {
  int64_t every_steps = 500;
  int64_t keep = 3;
  template <class V>
  void visit(V& v) {
    v("every_steps", every_steps, "Steps between checkpoints (and one at the end of each stage)",
      AtLeast{1});
    v("keep", keep, "Complete checkpoints kept per stage (0 = all)", AtLeast{0});
  }
};

// Section `data`: the loader's keys (data/loader.h) plus data.canaries (data/canaries.h), which
// the trainer alone applies (the loader never sees canaries: they are appended to the split).
struct TrainDataOptions : DataOptions {
  CanaryOptions canaries;
  template <class V>
  void visit(V& v) {
    DataOptions::visit(v);
    v.section("canaries", canaries);
  }
};

struct TrainConfig {
  RunOptions run;
  std::string stage = "both";
  int64_t threads = 0;  // intra-op threads per rank; 0 = cores / local ranks
  TrainDataOptions data;
  AutoencoderStageOptions autoencoder;
  PriorStageOptions prior;
  CheckpointOptions checkpoint;
  PrivacyOptions privacy;
  CommOptions comm;
  MonitoringOptions monitoring;

  template <class V>
  void visit(V& v) {
    v.section("run", run);
    v("stage", stage, "Which stage(s) to train", OneOf{"autoencoder", "prior", "both"});
    v("threads", threads, "Intra-op threads per rank (0 = cores per node / local ranks)",
      AtLeast{0});
    v.section("data", data);
    v.section("autoencoder", autoencoder);
    v.section("prior", prior);
    v.section("privacy", privacy);
    v.section("checkpoint", checkpoint);
    v.section("comm", comm);
    v.section("monitoring", monitoring);
  }

  // Cross-field checks (model options, data.path set); throws umbra::Error naming the key.
  void validate() const;
};

// Loads FILE (may be empty: defaults only) with overrides, binds, validates, rejects unknown keys.
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides);

// The resolved configuration as YAML (what <run>/config.yaml holds) and its SHA-256.
std::string resolved_yaml(const TrainConfig& cfg);
std::string config_hash(const TrainConfig& cfg);

// resolved_yaml with data.canaries.seed replaced by -1: what may be published (a release). The
// seed decides which canaries were trained on; published, it would void the canary audit.
std::string public_yaml(const TrainConfig& cfg);

}  // namespace umbra
