// `umbra audit` and `umbra release` through the real binary, on a tiny run trained once per test
// binary build (the fixture below): summary sections, 2 ranks = 1 rank for the memorisation
// figures, release + verify, a flipped byte named, refusals, bad input.
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "data/idx.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

std::string run_command(const std::string& command, int* status) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) {
    *status = -1;
    return out;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int rc = ::pclose(pipe);
  *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

std::string umbra_cmd(const std::string& args) { return std::string(UMBRA_BINARY) + " " + args; }

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

void write_be32(std::ofstream& out, uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24),
                              static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  out.write(reinterpret_cast<const char*>(b), 4);
}

// The first `count` images of a Fashion-MNIST split as raw IDX files.
void write_idx_subset(const std::string& prefix, int64_t count, const fs::path& images,
                      const fs::path& labels) {
  const std::string dir = kFashionMnistDir;
  const IdxImages idx = read_idx_pair(dir + "/" + prefix + "-images-idx3-ubyte.gz",
                                      dir + "/" + prefix + "-labels-idx1-ubyte.gz");
  std::ofstream im(images, std::ios::binary), lb(labels, std::ios::binary);
  write_be32(im, kIdxImagesMagic);
  write_be32(im, static_cast<uint32_t>(count));
  write_be32(im, static_cast<uint32_t>(idx.height));
  write_be32(im, static_cast<uint32_t>(idx.width));
  im.write(reinterpret_cast<const char*>(idx.images.data()), count * idx.height * idx.width);
  write_be32(lb, kIdxLabelsMagic);
  write_be32(lb, static_cast<uint32_t>(count));
  for (int64_t i = 0; i < count; ++i) lb.put(static_cast<char>(idx.labels[i]));
}

// A packed 1,500 + 500 image subset, a tiny trained run and its 1-rank audit, made once per
// build of the umbra binary (keyed by its modification time) under a file lock, so tests run
// in separate processes (and in parallel) share them.
struct Fixture {
  fs::path root, data, run, audit;
  std::string audit_stdout;
};

const Fixture& fixture() {
  static Fixture f = [] {
    struct stat st {};
    ::stat(UMBRA_BINARY, &st);
    Fixture x;
    x.root = fs::current_path() / ("audit_fixture_" + std::to_string(st.st_mtime));
    x.data = x.root / "data";
    x.run = x.root / "runs" / "tiny";
    x.audit = x.run / "audit";
    fs::create_directories(x.root);
    const int lock = ::open((x.root / "lock").c_str(), O_CREAT | O_RDWR, 0644);
    ::flock(lock, LOCK_EX);
    // Fixtures of earlier builds of the binary.
    for (const auto& e : fs::directory_iterator(fs::current_path())) {
      const std::string name = e.path().filename().string();
      if (name.rfind("audit_fixture_", 0) == 0 && e.path() != x.root) {
        std::error_code ec;
        fs::remove_all(e.path(), ec);
      }
    }
    if (!fs::exists(x.root / "done")) {
      fs::remove_all(x.data);
      fs::remove_all(x.root / "runs");
      fs::remove_all(x.root / "idx");
      fs::create_directories(x.root / "idx");
      write_idx_subset("train", 1500, x.root / "idx/train-images", x.root / "idx/train-labels");
      write_idx_subset("t10k", 500, x.root / "idx/test-images", x.root / "idx/test-labels");
      int status = 0;
      std::string out = run_command(
          umbra_cmd("pack idx --images " + (x.root / "idx/train-images").string() + " --labels " +
                    (x.root / "idx/train-labels").string() + " --test-images " +
                    (x.root / "idx/test-images").string() + " --test-labels " +
                    (x.root / "idx/test-labels").string() + " --out " + x.data.string()),
          &status);
      if (status != 0) throw std::runtime_error("pack failed: " + out);
      out = run_command(umbra_cmd("train --config " + std::string(UMBRA_SOURCE_DIR) +
                                  "/configs/tiny_test.yaml data.path=" + x.data.string() +
                                  " run.dir=" + (x.root / "runs").string() + " run.name=tiny"),
                        &status);
      if (status != 0) throw std::runtime_error("train failed: " + out);
      out = run_command(umbra_cmd("audit --run " + x.run.string() + " --samples 100 --quick"),
                        &status);
      if (status != 0) throw std::runtime_error("audit failed: " + out);
      std::ofstream(x.root / "audit_stdout.txt") << out;
      std::ofstream(x.root / "done") << "ok\n";
    }
    std::ifstream in(x.root / "audit_stdout.txt");
    x.audit_stdout.assign(std::istreambuf_iterator<char>(in), {});
    ::flock(lock, LOCK_UN);
    ::close(lock);
    return x;
  }();
  return f;
}

fs::path temp_dir(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("umbra_launch_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

TEST(AuditVerb, WritesSummaryWithEverySection) {
  const Fixture& f = fixture();
  const nlohmann::json s = read_json(f.audit / "summary.json");
  for (const char* key : {"privacy", "samples", "memorization", "membership", "canaries", "quality",
                          "gates", "passed", "verdict", "checkpoints", "gates_help"}) {
    EXPECT_TRUE(s.contains(key)) << "summary.json lacks '" << key << "'";
  }
  EXPECT_EQ(s["samples"]["count"], 100);
  EXPECT_EQ(s["memorization"]["generated"]["count"], 100);
  EXPECT_EQ(s["memorization"]["heldout"]["count"], 100);
  EXPECT_EQ(s["memorization"]["k"], 50);
  EXPECT_TRUE(s["memorization"]["training_images_redacted"].get<bool>());
  for (const char* side : {"diffusion", "elbo"}) {
    const auto& m = s["membership"][side];
    EXPECT_GE(m["auc"].get<double>(), 0.0);
    EXPECT_LE(m["auc"].get<double>(), 1.0);
    EXPECT_EQ(m["members"], m["nonmembers"]);
  }
  EXPECT_FALSE(s["privacy"]["dp"].get<bool>());  // tiny_test.yaml trains without DP
  EXPECT_TRUE(s["quality"]["fid_proxy"].is_number());
  EXPECT_TRUE(s["quality"]["downstream"]["test_accuracy"].is_number());
  ASSERT_TRUE(s["gates"].is_array());
  EXPECT_EQ(s["gates"][0]["name"], "memorization");
  for (const char* file :
       {"index.html", "samples.png", "worst_pairs.png", "roc_diffusion.svg", "roc_elbo.svg"}) {
    EXPECT_TRUE(fs::is_regular_file(f.audit / file)) << file;
  }
  EXPECT_NE(f.audit_stdout.find("memorisation"), std::string::npos) << f.audit_stdout;
  EXPECT_NE(f.audit_stdout.find("verdict"), std::string::npos) << f.audit_stdout;
}

TEST(AuditVerb, TwoRanksGiveTheSameMemorisationFigures) {
  const Fixture& f = fixture();
  const fs::path out = temp_dir("mpi_audit");
  int status = 0;
  const std::string log = run_command(
      "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2 " +
          umbra_cmd("audit --run " + f.run.string() + " --samples 100 --quick --no-quality --out " +
                    out.string()),
      &status);
  ASSERT_EQ(status, 0) << log;
  const nlohmann::json one = read_json(f.audit / "summary.json");
  const nlohmann::json two = read_json(out / "summary.json");
  EXPECT_EQ(two["world_size"], 2);
  for (const char* side : {"generated", "heldout"}) {
    EXPECT_EQ(one["memorization"][side], two["memorization"][side]) << side;
  }
  const auto& w1 = one["memorization"]["worst"];
  const auto& w2 = two["memorization"]["worst"];
  ASSERT_EQ(w1.size(), w2.size());
  for (size_t i = 0; i < w1.size(); ++i) {
    EXPECT_EQ(w1[i]["index"], w2[i]["index"]);
    EXPECT_EQ(w1[i]["nearest_id"], w2[i]["nearest_id"]);
    // float32 GEMMs and re-ranks in other block shapes: equal to float32 round-off.
    EXPECT_NEAR(w1[i]["score"].get<double>(), w2[i]["score"].get<double>(), 1e-5);
  }
  for (const char* side : {"diffusion", "elbo"}) {
    EXPECT_NEAR(one["membership"][side]["auc"].get<double>(),
                two["membership"][side]["auc"].get<double>(), 1e-9)
        << side;
  }
  fs::remove_all(out);
}

TEST(ReleaseVerb, ReleaseThenVerifyAndAFlippedByteIsNamed) {
  const Fixture& f = fixture();
  const fs::path tmp = temp_dir("release");
  const fs::path out = tmp / "bundle";
  int status = 0;
  std::string log =
      run_command(umbra_cmd("release --run " + f.run.string() + " --out " + out.string()), &status);
  ASSERT_EQ(status, 0) << log;
  for (const char* file :
       {"weights/autoencoder.safetensors", "weights/prior.safetensors", "config.yaml",
        "MODEL_CARD.md", "privacy_report.json", "audit/summary.json", "audit/index.html",
        "audit/worst_pairs.png", "samples.png", "SHA256SUMS"}) {
    EXPECT_TRUE(fs::is_regular_file(out / file)) << file;
  }
  const nlohmann::json report = read_json(out / "privacy_report.json");
  EXPECT_TRUE(report["epsilon"].is_null());
  EXPECT_TRUE(report["stages"].contains("autoencoder"));
  EXPECT_TRUE(report["stages"].contains("prior"));
  std::ifstream card_in(out / "MODEL_CARD.md");
  const std::string card((std::istreambuf_iterator<char>(card_in)), {});
  EXPECT_NE(card.find("No differential-privacy guarantee"), std::string::npos) << card;
  EXPECT_NE(card.find("no `--force`"), std::string::npos) << card;

  log = run_command(umbra_cmd("release --verify " + out.string()), &status);
  EXPECT_EQ(status, 0) << log;

  {
    std::fstream w(out / "weights/prior.safetensors",
                   std::ios::in | std::ios::out | std::ios::binary);
    w.seekg(100);
    char c = 0;
    w.read(&c, 1);
    w.seekp(100);
    c = static_cast<char>(c ^ 0x01);
    w.write(&c, 1);
  }
  log = run_command(umbra_cmd("release --verify " + out.string()), &status);
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("weights/prior.safetensors"), std::string::npos) << log;
  EXPECT_EQ(log.find("autoencoder.safetensors"), std::string::npos) << log;

  // An existing output directory is never overwritten.
  log =
      run_command(umbra_cmd("release --run " + f.run.string() + " --out " + out.string()), &status);
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("already exists"), std::string::npos) << log;
  fs::remove_all(tmp);
}

TEST(ReleaseVerb, RefusesAFailedAuditUnlessForced) {
  const Fixture& f = fixture();
  const fs::path tmp = temp_dir("refuse");
  fs::copy(f.audit, tmp / "audit", fs::copy_options::recursive);
  nlohmann::json s = read_json(tmp / "audit/summary.json");
  s["passed"] = false;
  s["gates"][0]["passed"] = false;
  s["gates"][0]["why"] = "generated 50.00% vs null 1.00%";
  std::ofstream(tmp / "audit/summary.json") << s.dump(2);
  int status = 0;
  std::string log =
      run_command(umbra_cmd("release --run " + f.run.string() + " --audit " +
                            (tmp / "audit").string() + " --out " + (tmp / "bundle").string()),
                  &status);
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("release refused"), std::string::npos) << log;
  EXPECT_NE(log.find("memorization"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(tmp / "bundle"));

  log = run_command(
      umbra_cmd("release --run " + f.run.string() + " --audit " + (tmp / "audit").string() +
                " --out " + (tmp / "bundle").string() + " --force"),
      &status);
  ASSERT_EQ(status, 0) << log;
  std::ifstream card_in(tmp / "bundle/MODEL_CARD.md");
  const std::string card((std::istreambuf_iterator<char>(card_in)), {});
  EXPECT_NE(card.find("Released with `--force`"), std::string::npos) << card;
  EXPECT_NE(card.find("memorization"), std::string::npos) << card;

  // No audit at all.
  log = run_command(umbra_cmd("release --run " + f.run.string() + " --audit " +
                              (tmp / "none").string() + " --out " + (tmp / "b2").string()),
                    &status);
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("no audit"), std::string::npos) << log;
  fs::remove_all(tmp);
}

// A DP run: the privacy block read from the real trainer's checkpoints, ε recomputed from the
// composed history of both stages, and the card and report saying so.
TEST(ReleaseVerb, DpRunCarriesTheComposedEpsilon) {
  const Fixture& f = fixture();
  const fs::path tmp = temp_dir("dp");
  int status = 0;
  std::string log = run_command(
      umbra_cmd("train --config " + std::string(UMBRA_SOURCE_DIR) +
                "/configs/tiny_test.yaml data.path=" + f.data.string() +
                " run.dir=" + tmp.string() +
                " run.name=dp privacy.enabled=true privacy.target_epsilon=10 "
                "privacy.delta=1e-4 privacy.expected_batch_size=16 prior.scale_factor=1.0"),
      &status);
  ASSERT_EQ(status, 0) << log;
  log = run_command(
      umbra_cmd("audit --run " + (tmp / "dp").string() + " --samples 60 --quick --no-quality"),
      &status);
  ASSERT_EQ(status, 0) << log;
  const nlohmann::json s = read_json(tmp / "dp/audit/summary.json");
  ASSERT_TRUE(s["privacy"]["dp"].get<bool>()) << s["privacy"].dump(2);
  const double eps = s["privacy"]["epsilon"].get<double>();
  EXPECT_GT(eps, 0);
  EXPECT_LE(eps, 10.0 * (1 + 1e-9));
  EXPECT_NEAR(eps, s["privacy"]["epsilon_recorded"].get<double>(), 1e-6 * eps);
  ASSERT_EQ(s["privacy"]["history"].size(), 2u) << s["privacy"].dump(2);
  EXPECT_EQ(s["privacy"]["history"][0]["stage"], "autoencoder");
  EXPECT_EQ(s["privacy"]["history"][1]["stage"], "prior");
  EXPECT_EQ(s["gates"][2]["name"], "accounting");
  EXPECT_TRUE(s["gates"][2]["passed"].get<bool>()) << s["gates"].dump(2);

  log = run_command(
      umbra_cmd("release --run " + (tmp / "dp").string() + " --out " + (tmp / "bundle").string()),
      &status);
  ASSERT_EQ(status, 0) << log;
  const nlohmann::json report = read_json(tmp / "bundle/privacy_report.json");
  EXPECT_DOUBLE_EQ(report["epsilon"].get<double>(), eps);
  EXPECT_DOUBLE_EQ(report["delta"].get<double>(), 1e-4);
  EXPECT_EQ(report["accountant"], "rdp");
  EXPECT_EQ(report["stages"]["autoencoder"]["steps"], 4);
  EXPECT_EQ(report["stages"]["prior"]["steps"], 4);
  EXPECT_TRUE(report["stages"]["prior"]["noise_multiplier"].is_number());
  std::ifstream card_in(tmp / "bundle/MODEL_CARD.md");
  const std::string card((std::istreambuf_iterator<char>(card_in)), {});
  EXPECT_NE(card.find("-differential privacy**"), std::string::npos) << card;
  EXPECT_NE(card.find("one training image"), std::string::npos) << card;
  fs::remove_all(tmp);
}

// Unredacted worst pairs show training images: the audit writes them when asked, the release
// leaves them out.
TEST(ReleaseVerb, LeavesOutUnredactedWorstPairs) {
  const Fixture& f = fixture();
  const fs::path tmp = temp_dir("unredacted");
  int status = 0;
  std::string log = run_command(
      umbra_cmd("audit --run " + f.run.string() + " --samples 40 --quick --no-quality " +
                "--include-training-images --out " + (tmp / "audit").string()),
      &status);
  ASSERT_EQ(status, 0) << log;
  EXPECT_FALSE(read_json(tmp / "audit/summary.json")["memorization"]["training_images_redacted"]
                   .get<bool>());
  EXPECT_TRUE(fs::is_regular_file(tmp / "audit/worst_pairs.png"));
  log = run_command(umbra_cmd("release --run " + f.run.string() + " --audit " +
                              (tmp / "audit").string() + " --out " + (tmp / "bundle").string()),
                    &status);
  ASSERT_EQ(status, 0) << log;
  EXPECT_FALSE(fs::exists(tmp / "bundle/audit/worst_pairs.png"));
  EXPECT_TRUE(fs::is_regular_file(tmp / "bundle/audit/summary.json"));
  log = run_command(umbra_cmd("release --verify " + (tmp / "bundle").string()), &status);
  EXPECT_EQ(status, 0) << log;
  fs::remove_all(tmp);
}

TEST(AuditVerb, BadInputIsAClearError) {
  const Fixture& f = fixture();
  const fs::path tmp = temp_dir("bad");
  int status = 0;
  std::string log = run_command(umbra_cmd("audit --run " + (tmp / "missing").string()), &status);
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("no such run directory"), std::string::npos) << log;

  // A run whose prior was never trained.
  fs::create_directories(tmp / "noprior");
  fs::copy(f.run / "config.yaml", tmp / "noprior/config.yaml");
  fs::copy(f.run / "autoencoder", tmp / "noprior/autoencoder", fs::copy_options::recursive);
  log = run_command(umbra_cmd("audit --run " + (tmp / "noprior").string()), &status);
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("prior"), std::string::npos) << log;
  log = run_command(
      umbra_cmd("release --run " + (tmp / "noprior").string() + " --out " + (tmp / "b").string()),
      &status);
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("prior"), std::string::npos) << log;

  log = run_command(umbra_cmd("release --verify " + (tmp / "missing").string()), &status);
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("not a release directory"), std::string::npos) << log;

  log = run_command(umbra_cmd("audit --samples 10"), &status);
  EXPECT_EQ(status, 2) << log;
  log = run_command(umbra_cmd("audit --run " + f.run.string() + " --samples 1"), &status);
  EXPECT_EQ(status, 2) << log;
  log = run_command(umbra_cmd("release --run " + f.run.string()), &status);
  EXPECT_EQ(status, 2) << log;
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace umbra
