#include "audit/release.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "audit/text_file.h"
#include "audit_test_util.h"
#include "core/check.h"
#include "core/png.h"
#include "core/safetensors.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

nlohmann::json privacy_report() {
  return {{"epsilon", 10.0},
          {"delta", 1e-5},
          {"accountant", "rdp"},
          {"privacy_unit", "one training image (add/remove)"},
          {"stages",
           {{"autoencoder",
             {{"noise_multiplier", 1.1},
              {"max_grad_norm", 1.0},
              {"sample_rate", 0.004},
              {"steps", 2000}}},
            {"prior",
             {{"noise_multiplier", 0.9},
              {"max_grad_norm", 1.0},
              {"sample_rate", 0.01},
              {"steps", 5000}}}}}};
}

// Source pieces in `src`, a ReleaseContents pointing at them.
ReleaseContents make_contents(const fs::path& src) {
  fs::create_directories(src);
  save_safetensors((src / "ae.safetensors").string(), {{"w", torch::arange(12.0).view({3, 4})}});
  save_safetensors((src / "prior.safetensors").string(), {{"b", torch::ones({5})}});
  save_image_grid((src / "grid.png").string(), torch::zeros({4, 1, 8, 8}), 2);
  write_text_atomic((src / "roc.svg").string(), "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n");
  ReleaseContents c;
  c.weights = {{"autoencoder.safetensors", (src / "ae.safetensors").string()},
               {"prior.safetensors", (src / "prior.safetensors").string()}};
  c.config_yaml = "run:\n  name: test\n";
  c.model_card = "# Model card\n";
  c.privacy_report = privacy_report();
  c.audit_summary = {{"memorization", {{"generated", {{"flag_rate", 0.0}}}}}};
  c.audit_files = {{"roc.svg", (src / "roc.svg").string()}};
  c.sample_grid = (src / "grid.png").string();
  return c;
}

void flip_byte(const fs::path& file, int64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c ^= 0x01;
  f.seekp(offset);
  f.write(&c, 1);
}

TEST(Release, WritesAVerifiableBundle) {
  const fs::path dir = audit_test::temp_dir("release_ok");
  const fs::path out = dir / "bundle";
  const auto files = write_release(out.string(), make_contents(dir / "src"));
  const std::vector<std::string> expected = {"MODEL_CARD.md",
                                             "audit/roc.svg",
                                             "audit/summary.json",
                                             "config.yaml",
                                             "privacy_report.json",
                                             "samples.png",
                                             "weights/autoencoder.safetensors",
                                             "weights/prior.safetensors"};
  EXPECT_EQ(files, expected);
  EXPECT_TRUE(verify_release(out.string()).ok());
  EXPECT_NO_THROW(check_release(out.string()));
  // The GNU coreutils tool agrees with SHA256SUMS.
  int status = 0;
  const std::string log = audit_test::run_command(
      "cd '" + out.string() + "' && sha256sum --check --strict SHA256SUMS 2>&1", &status);
  EXPECT_EQ(status, 0) << log;
  // The pieces round-trip.
  EXPECT_EQ(nlohmann::json::parse(read_text_file((out / "privacy_report.json").string())),
            privacy_report());
  EXPECT_TRUE(torch::equal(
      load_safetensors((out / "weights/autoencoder.safetensors").string()).tensors.at("w"),
      torch::arange(12.0).view({3, 4})));
  // Nothing temporary is left next to the bundle.
  for (const auto& entry : fs::directory_iterator(dir)) {
    EXPECT_NE(entry.path().filename().string().rfind(".tmp-", 0), 0u) << entry.path();
  }
  fs::remove_all(dir);
}

TEST(Release, FlippedByteFailsNamingTheFile) {
  const fs::path dir = audit_test::temp_dir("release_flip");
  const fs::path out = dir / "bundle";
  write_release(out.string(), make_contents(dir / "src"));
  const fs::path victim = out / "weights" / "prior.safetensors";
  flip_byte(victim, static_cast<int64_t>(fs::file_size(victim)) - 3);  // inside the tensor data
  const ReleaseVerification v = verify_release(out.string());
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.mismatched, std::vector<std::string>{"weights/prior.safetensors"});
  EXPECT_TRUE(v.missing.empty());
  try {
    check_release(out.string());
    ADD_FAILURE() << "check_release accepted a flipped byte";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mismatched: weights/prior.safetensors"),
              std::string::npos)
        << e.what();
  }
  int status = 0;
  audit_test::run_command("cd '" + out.string() + "' && sha256sum --check --quiet SHA256SUMS 2>&1",
                          &status);
  EXPECT_NE(status, 0);
  fs::remove_all(dir);
}

TEST(Release, MissingAndExtraFiles) {
  const fs::path dir = audit_test::temp_dir("release_missing");
  const fs::path out = dir / "bundle";
  write_release(out.string(), make_contents(dir / "src"));
  fs::remove(out / "MODEL_CARD.md");
  write_text_atomic((out / "audit" / "notes.txt").string(), "not part of the release\n");
  const ReleaseVerification v = verify_release(out.string());
  EXPECT_EQ(v.missing, std::vector<std::string>{"MODEL_CARD.md"});
  EXPECT_EQ(v.extra, std::vector<std::string>{"audit/notes.txt"});
  EXPECT_EQ(v.describe(), "missing: MODEL_CARD.md; extra: audit/notes.txt");
  fs::remove(out / "SHA256SUMS");
  EXPECT_THROW(verify_release(out.string()), Error);
  EXPECT_THROW(verify_release((dir / "nope").string()), Error);
  fs::remove_all(dir);
}

TEST(Release, RefusesBadPiecesAndLeavesNothing) {
  const fs::path dir = audit_test::temp_dir("release_bad");
  const ReleaseContents good = make_contents(dir / "src");
  auto expect_error = [&](ReleaseContents c, const std::string& needle) {
    try {
      write_release((dir / "bundle").string(), c);
      ADD_FAILURE() << "accepted; expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / "bundle"));
  };
  ReleaseContents c = good;
  c.privacy_report.erase("epsilon");
  expect_error(c, "'epsilon'");
  c = good;
  c.privacy_report["stages"]["prior"].erase("sample_rate");
  expect_error(c, "stages.prior: missing key 'sample_rate'");
  c = good;
  c.weights[1].second = (dir / "src" / "grid.png").string();  // not safetensors
  expect_error(c, "grid.png");
  c = good;
  c.weights[0].first = "../evil.safetensors";
  expect_error(c, "plain file name");
  c = good;
  c.sample_grid = (dir / "src" / "missing.png").string();
  expect_error(c, "missing.png");
  // An existing bundle is never overwritten.
  write_release((dir / "bundle").string(), good);
  EXPECT_THROW(write_release((dir / "bundle").string(), good), Error);
  EXPECT_TRUE(verify_release((dir / "bundle").string()).ok());
  // A report for a model trained without DP: epsilon/delta null is accepted.
  c = good;
  c.privacy_report["epsilon"] = nullptr;
  c.privacy_report["delta"] = nullptr;
  EXPECT_NO_THROW(write_release((dir / "bundle_nodp").string(), c));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace umbra
