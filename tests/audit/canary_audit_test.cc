// The canary audit: guessing on planted scores (lower loss = IN) and the run record; then through
// the real binaries on a 200 + 100 image Fashion-MNIST subset: consistent figures, 2 ranks = 1
// rank, a DP run's gate against the accountant's epsilon, a release without the sealed seed,
// bad input.
#include "audit/canary_audit.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "audit/canary_bound.h"
#include "audit_test_util.h"
#include "core/check.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

std::string umbra_cmd(const std::string& args) { return std::string(UMBRA_BINARY) + " " + args; }

std::string run(const std::string& command, int* status) {
  const std::string out = audit_test::run_command(command + " 2>&1", status);
  std::printf("$ %s\n-> exit %d\n%s\n", command.c_str(), *status,
              out.size() > 4000 ? out.substr(out.size() - 4000).c_str() : out.c_str());
  return out;
}

DatasetMeta audit_test_meta() {
  DatasetMeta m;
  m.channels = 1;
  m.height = 28;
  m.width = 28;
  for (int k = 0; k < 10; ++k) m.class_names.push_back("c" + std::to_string(k));
  return m;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  EXPECT_TRUE(in.good()) << p;
  return in.good() ? nlohmann::json::parse(in) : nlohmann::json();
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class CanaryAuditRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(audit_test::temp_dir("canary_audit"));
    int status = 0;
    run("bash " + std::string(UMBRA_SOURCE_DIR) + "/tests/trainer/make_tiny_data.sh " +
            UMBRA_BINARY + " " + UMBRA_PYTHON + " " + UMBRA_SOURCE_DIR + " " +
            (*root_ / "data").string() + " 200 100",
        &status);
    ASSERT_EQ(status, 0);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
    root_ = nullptr;
  }

  static fs::path train(const std::string& name, const std::string& overrides) {
    int status = 0;
    run(umbra_cmd("train --config " + std::string(UMBRA_SOURCE_DIR) +
                  "/configs/tiny_test.yaml data.path=" + (*root_ / "data").string() +
                  " run.dir=" + (*root_ / "runs").string() + " run.name=" + name +
                  " data.canaries.count=20 data.canaries.seed=11 " + overrides),
        &status);
    EXPECT_EQ(status, 0);
    return *root_ / "runs" / name;
  }

  static nlohmann::json audit(const fs::path& run_dir, const std::string& out,
                              const std::string& extra = "", const std::string& launcher = "") {
    int status = 0;
    run(launcher + umbra_cmd("audit --run " + run_dir.string() +
                             " --samples 60 --quick --no-quality --out " + (*root_ / out).string() +
                             " " + extra),
        &status);
    EXPECT_EQ(status, 0);
    return read_json(*root_ / out / "summary.json");
  }

  static fs::path* root_;
};
fs::path* CanaryAuditRun::root_ = nullptr;

// The figures are consistent and the same on 2 ranks. That the -ELBO separates IN from OUT is
// not asserted here: measured on this tiny autoencoder (even 300-400 steps on 60-200 images,
// channels 8 or 32), nothing is memorised (membership AUC ~0.5) and the canaries' losses do not
// depend on their inclusion; CanaryScoring below checks the guessing on planted scores.
TEST_F(CanaryAuditRun, NonPrivateRunReportsConsistentFiguresOnAnyNumberOfRanks) {
  const fs::path r = train("plain", "autoencoder.max_steps=40 prior.max_steps=2");
  const nlohmann::json s = audit(r, "plain_audit");
  const nlohmann::json& c = s["canaries"];
  ASSERT_TRUE(c.is_object());
  EXPECT_EQ(c["present"], true);
  EXPECT_EQ(c["kind"], "ood");
  EXPECT_EQ(c["m"], 20);
  const auto in = canary_inclusion(11, 20);
  EXPECT_EQ(c["included"], std::count(in.begin(), in.end(), true));
  EXPECT_EQ(c["guesses"], default_canary_guesses(20));
  EXPECT_EQ(c["guesses"], 10);
  EXPECT_EQ(c["k_in"], 5);
  EXPECT_EQ(c["k_out"], 5);
  EXPECT_GE(c["correct"].get<int64_t>(), 0);
  EXPECT_LE(c["correct"].get<int64_t>(), 10);
  EXPECT_NEAR(c["epsilon_ceiling"].get<double>(), one_run_epsilon_lower_bound(20, 10, 10), 1e-9);
  EXPECT_NEAR(c["epsilon_lower_bound"].get<double>(),
              one_run_epsilon_lower_bound(20, 10, c["correct"].get<int64_t>()), 1e-9);
  EXPECT_TRUE(c["accountant_epsilon"].is_null());
  EXPECT_EQ(c["delta"], 0.0);
  EXPECT_NE(c["score"].get<std::string>().find("ELBO"), std::string::npos);
  EXPECT_TRUE(c["secondary"]["epsilon_lower_bound"].is_number());
  for (const auto& g : s["gates"]) {
    if (g["name"] == "canaries") {
      EXPECT_FALSE(g["applicable"].get<bool>());
      EXPECT_EQ(g["why"], "not a DP run");
    }
  }
  EXPECT_NE(read_text(*root_ / "plain_audit/index.html").find("canaries, "), std::string::npos);

  // 2 ranks: the scores are computed in the same fixed chunks with the same seeds.
  const nlohmann::json two =
      audit(r, "plain_audit2", "",
            "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe "
            "-np 2 ");
  for (const char* key : {"correct", "guesses", "included", "epsilon_lower_bound"}) {
    EXPECT_EQ(two["canaries"][key], c[key]) << key;
  }
  EXPECT_EQ(two["canaries"]["secondary"], c["secondary"]);

  // Bad usage, and a configuration changed after training.
  int status = 0;
  std::string log = run(umbra_cmd("audit --run " + r.string() + " --canary-guesses 21 --out " +
                                  (*root_ / "bad").string()),
                        &status);
  EXPECT_EQ(status, 2);
  EXPECT_NE(log.find("--canary-guesses 21"), std::string::npos);
  log = run(umbra_cmd("audit --run " + r.string() + " --canary-guesses -3"), &status);
  EXPECT_EQ(status, 2);
  const fs::path edited = *root_ / "runs" / "edited";
  fs::copy(r, edited, fs::copy_options::recursive);
  std::string yaml = read_text(edited / "config.yaml");
  const auto at = yaml.find("seed: 11");
  ASSERT_NE(at, std::string::npos);
  yaml.replace(at, 8, "seed: 12");
  std::ofstream(edited / "config.yaml") << yaml;
  log = run(umbra_cmd("audit --run " + edited.string() + " --samples 60 --quick --no-quality"),
            &status);
  EXPECT_EQ(status, 1);
  EXPECT_NE(log.find("canaries.json"), std::string::npos);
}

// A run that memorises: 1,500 steps at a constant lr of 0.003 on 60 images + the included
// canaries (~2 minutes; registered as the `slow` CTest audit_canary_memorising, see
// tests/audit/CMakeLists.txt). Measured: 9/10 guesses right (epsilon_lb 0.43) at 1,500 steps,
// 10/10 (the ceiling, 1.05) at 3,000, where the ELBO membership AUC is 0.999.
TEST_F(CanaryAuditRun, DISABLED_MemorisingRunGetsMostGuessesRight) {
  int status = 0;
  run("bash " + std::string(UMBRA_SOURCE_DIR) + "/tests/trainer/make_tiny_data.sh " + UMBRA_BINARY +
          " " + UMBRA_PYTHON + " " + UMBRA_SOURCE_DIR + " " + (*root_ / "data60").string() +
          " 60 100",
      &status);
  ASSERT_EQ(status, 0);
  run(umbra_cmd("train --config " + std::string(UMBRA_SOURCE_DIR) +
                "/configs/tiny_test.yaml data.path=" + (*root_ / "data60").string() +
                " run.dir=" + (*root_ / "runs").string() +
                " run.name=memorising data.canaries.count=20 data.canaries.seed=11 "
                "autoencoder.max_steps=1500 autoencoder.optimizer.lr=0.003 "
                "autoencoder.optimizer.min_lr_ratio=1 autoencoder.log_every=500 "
                "prior.max_steps=2 checkpoint.every_steps=5000"),
      &status);
  ASSERT_EQ(status, 0);
  const nlohmann::json s = audit(*root_ / "runs" / "memorising", "memorising_audit");
  const nlohmann::json& c = s["canaries"];
  EXPECT_EQ(c["guesses"], 10);
  EXPECT_GE(c["correct"].get<int64_t>(), 8) << c.dump(2);
  EXPECT_GT(c["epsilon_lower_bound"].get<double>(), 0.0);
  EXPECT_GT(s["membership"]["elbo"]["auc"].get<double>(), 0.6);  // measured 0.76
}

TEST_F(CanaryAuditRun, DpRunIsGatedOnTheAccountantAndTheReleaseDropsTheSeed) {
  const fs::path r = train("dp",
                           "privacy.enabled=true privacy.noise_multiplier=1.0 "
                           "privacy.expected_batch_size=32 privacy.max_physical_batch=16 "
                           "prior.scale_factor=1.0");
  const nlohmann::json s = audit(r, "dp_audit");
  const nlohmann::json& c = s["canaries"];
  EXPECT_EQ(c["present"], true);
  ASSERT_TRUE(c["accountant_epsilon"].is_number());
  EXPECT_DOUBLE_EQ(c["accountant_epsilon"].get<double>(), s["privacy"]["epsilon"].get<double>());
  EXPECT_DOUBLE_EQ(c["delta"].get<double>(), s["privacy"]["delta"].get<double>());
  bool seen = false;
  for (const auto& g : s["gates"]) {
    if (g["name"] != "canaries") continue;
    seen = true;
    EXPECT_TRUE(g["applicable"].get<bool>());
    EXPECT_EQ(g["passed"],
              c["epsilon_lower_bound"].get<double>() <= s["privacy"]["epsilon"].get<double>());
    EXPECT_TRUE(g["passed"].get<bool>()) << g.dump();
    EXPECT_NE(g["why"].get<std::string>().find("vs accountant epsilon"), std::string::npos);
  }
  EXPECT_TRUE(seen);

  int status = 0;
  const fs::path bundle = *root_ / "bundle";
  run(umbra_cmd("release --run " + r.string() + " --audit " + (*root_ / "dp_audit").string() +
                " --out " + bundle.string() + " --force"),
      &status);
  ASSERT_EQ(status, 0);
  const std::string yaml = read_text(bundle / "config.yaml");
  EXPECT_EQ(yaml.find("seed: 11"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("data.canaries.seed is redacted"), std::string::npos);
  EXPECT_NE(yaml.find("count: 20"), std::string::npos);
  for (const auto& e : fs::recursive_directory_iterator(bundle)) {
    EXPECT_NE(e.path().filename(), "canaries.json");
  }
  EXPECT_NE(read_text(bundle / "MODEL_CARD.md").find("canary ε lower bound"), std::string::npos);
  run(umbra_cmd("release --verify " + bundle.string()), &status);
  EXPECT_EQ(status, 0);
}

// The guessing on planted per-canary losses: lower loss is guessed IN.
TEST(CanaryScoring, LowerLossIsGuessedInAndTheBoundFollows) {
  RunCanaries c;
  c.options.count = 100;
  c.options.seed = 5;
  c.canaries = make_canaries(c.options, audit_test_meta(), nullptr);
  c.included = canary_inclusion(5, 100);
  std::vector<double> leaking, reversed;
  for (int64_t j = 0; j < 100; ++j) {
    const double jitter = 0.001 * static_cast<double>(j % 7);
    leaking.push_back((c.included[j] ? 100.0 : 200.0) + jitter);
    reversed.push_back((c.included[j] ? 200.0 : 100.0) + jitter);
  }
  RunPrivacy none;
  const nlohmann::json a = canary_summary(c, leaking, 0, none, "planted");
  EXPECT_EQ(a["guesses"], 20);  // m / 5
  EXPECT_EQ(a["correct"], 20);
  EXPECT_DOUBLE_EQ(a["epsilon_lower_bound"].get<double>(), a["epsilon_ceiling"].get<double>());
  EXPECT_NEAR(a["epsilon_ceiling"].get<double>(), one_run_epsilon_lower_bound(100, 20, 20), 1e-12);
  EXPECT_GT(a["epsilon_lower_bound"].get<double>(), 1.5);
  EXPECT_TRUE(a["accountant_epsilon"].is_null());
  const nlohmann::json b = canary_summary(c, reversed, 100, none, "planted");
  EXPECT_EQ(b["guesses"], 100);
  // k_in = k_out = 50: only the surplus of one side over 50 can be right.
  const int64_t included = std::count(c.included.begin(), c.included.end(), true);
  EXPECT_EQ(b["correct"], std::abs(included - 50));
  EXPECT_EQ(b["epsilon_lower_bound"], 0.0);

  RunPrivacy dp;
  dp.dp = true;
  dp.epsilon = 0.5;
  dp.delta = 1e-5;
  const nlohmann::json d = canary_summary(c, leaking, 0, dp, "planted");
  EXPECT_EQ(d["accountant_epsilon"], 0.5);
  EXPECT_EQ(d["delta"], 1e-5);
  // A bound above the accountant's epsilon: the audit's gate would fail this run.
  EXPECT_GT(d["epsilon_lower_bound"].get<double>(), 0.5);
  EXPECT_THROW(canary_summary(c, leaking, 101, none, "planted"), UsageError);
}

// The reference views: the canary's own pixels in orientations training never showed.
TEST(CanaryScoring, ReferenceViewsAreTheUntrainedSymmetriesOfEachCanary) {
  CanaryOptions o;
  o.count = 3;
  o.seed = 11;
  const SplitData c = make_canaries(o, audit_test_meta(), nullptr);
  const std::vector<SplitData> views = canary_reference_views(c);
  ASSERT_EQ(views.size(), 6u);  // square images: the 8 symmetries less identity and h-flip
  const int64_t h = 28, w = 28;
  auto px = [&](const SplitData& s, int64_t j, int64_t r, int64_t col) {
    return s.image(j)[r * w + col];
  };
  for (int64_t j = 0; j < c.count(); ++j) {
    for (int64_t r = 0; r < h; ++r) {
      for (int64_t col = 0; col < w; ++col) {
        const uint8_t v = px(c, j, r, col);
        ASSERT_EQ(px(views[0], j, h - 1 - r, col), v);          // vertical flip
        ASSERT_EQ(px(views[1], j, h - 1 - r, w - 1 - col), v);  // 180 degrees
        ASSERT_EQ(px(views[2], j, col, r), v);                  // main diagonal
        ASSERT_EQ(px(views[3], j, w - 1 - col, h - 1 - r), v);  // anti-diagonal
        ASSERT_EQ(px(views[4], j, col, h - 1 - r), v);          // 90 degrees clockwise
        ASSERT_EQ(px(views[5], j, w - 1 - col, r), v);          // 270 degrees clockwise
      }
    }
  }
  for (const SplitData& v : views) {
    EXPECT_EQ(v.ids, c.ids);
    EXPECT_EQ(v.labels, c.labels);
    EXPECT_NE(v.images, c.images);  // ood patterns are not symmetric
  }
  DatasetMeta wide = audit_test_meta();
  wide.width = 30;
  SplitData r;
  r.meta = wide;
  r.images.assign(static_cast<size_t>(2 * wide.image_bytes()), 0);
  r.images[5] = 9;
  r.labels = {0, 1};
  r.ids = {7, 8};
  const std::vector<SplitData> rect = canary_reference_views(r);
  ASSERT_EQ(rect.size(), 2u);  // vertical flip and 180 degrees only
  EXPECT_EQ(rect[0].images[27 * 30 + 5], 9);
  EXPECT_EQ(rect[1].images[27 * 30 + 24], 9);

  EXPECT_EQ(calibrated_canary_losses({10, 20}, {{4, 30}, {6, 10}}), (std::vector<double>{5, 0}));
  EXPECT_THROW(calibrated_canary_losses({10, 20}, {{4}}), Error);
  EXPECT_THROW(calibrated_canary_losses({10, 20}, {}), Error);
}

TEST(CanaryScoring, TheRunRecordMustMatchTheConfiguration) {
  const fs::path dir = audit_test::temp_dir("canary_record");
  CanaryOptions o;
  o.count = 8;
  o.seed = 3;
  const SplitData test;
  EXPECT_FALSE(load_run_canaries(dir.string(), CanaryOptions(), audit_test_meta(), test));
  EXPECT_THROW(load_run_canaries(dir.string(), o, audit_test_meta(), test), Error);  // no record
  const auto in = canary_inclusion(3, 8);
  nlohmann::json record = {{"count", 8},
                           {"kind", "ood"},
                           {"seed", 3},
                           {"included", std::count(in.begin(), in.end(), true)}};
  std::ofstream(dir / "canaries.json") << record.dump();
  const auto c = load_run_canaries(dir.string(), o, audit_test_meta(), test);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->canaries.count(), 8);
  EXPECT_EQ(c->included, in);
  record["seed"] = 4;
  std::ofstream(dir / "canaries.json") << record.dump();
  try {
    load_run_canaries(dir.string(), o, audit_test_meta(), test);
    ADD_FAILURE() << "a record with another seed was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("canaries.json"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace umbra
