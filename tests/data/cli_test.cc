// `umbra pack` and `umbra inspect` as a user runs them: exit codes 0/1/2, what inspect prints,
// a flipped byte named by inspect, refusing to overwrite, and bad inputs as one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "core/png.h"
#include "data_test_util.h"

namespace umbra {
namespace {

using namespace test_util;
namespace fs = std::filesystem;

const std::string kUmbra = UMBRA_BINARY;

bool contains(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

// The line that names the failure (main prints "umbra: error: ...").
std::string error_line(const std::string& output) {
  const size_t at = output.find("umbra: error: ");
  if (at == std::string::npos) return "";
  return output.substr(at, output.find('\n', at) - at);
}

TEST(PackInspectCli, FashionMnistPackInspectAndCorruption) {
  TempDir dir;
  const std::string out = dir / "fmnist";
  CommandResult r = run_command(kUmbra + " pack fashion-mnist --out " + out);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "train 60000 images (6 shards)")) << r.output;
  EXPECT_TRUE(contains(r.output, "test 10000 images (1 shard)")) << r.output;

  r = run_command(kUmbra + " inspect " + out);
  ASSERT_EQ(r.rc, 0) << r.output;
  std::printf("%s", r.output.c_str());
  for (const char* needle : {"split train: 60000 images in 6 shards, ids 0..59999",
                             "split test: 10000 images in 1 shard, ids 60000..69999", "classes: 10",
                             "T-shirt/top", "Ankle boot", "uint8 [N, 1, 28, 28]", "OK"})
    EXPECT_TRUE(contains(r.output, needle)) << needle << "\n" << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("1 +Trouser +6000 +1000\n"))) << r.output;

  r = run_command(kUmbra + " pack fashion-mnist --out " + out);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(contains(error_line(r.output), "refusing to overwrite")) << r.output;

  std::vector<char> bytes = read_bytes(out + "/train-00003.h5");
  bytes[bytes.size() / 2] ^= 0x01;
  write_bytes(out + "/train-00003.h5", bytes);
  r = run_command(kUmbra + " inspect " + out);
  EXPECT_EQ(r.rc, 1);
  std::printf("[bad input] %s\n", error_line(r.output).c_str());
  EXPECT_TRUE(contains(error_line(r.output), "1 of 7 shards failed verification: train-00003.h5"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "train-00003.h5           FAILED: ")) << r.output;

  // --force replaces the damaged dataset with a good one (uncompressed this time).
  r = run_command(kUmbra +
                  " pack fashion-mnist --compression none --shard-size 20000 --force --out " + out);
  ASSERT_EQ(r.rc, 0) << r.output;
  r = run_command(kUmbra + " inspect " + out);
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "split train: 60000 images in 3 shards")) << r.output;
}

TEST(PackInspectCli, UsageAndBadInputs) {
  TempDir dir;
  for (const char* verb : {"pack --help", "pack fashion-mnist --help", "pack idx --help",
                           "pack images --help", "inspect --help"}) {
    const CommandResult r = run_command(kUmbra + " " + verb);
    EXPECT_EQ(r.rc, 0) << verb << "\n" << r.output;
  }
  EXPECT_EQ(run_command(kUmbra + " pack fashion-mnist").rc, 2);  // --out missing
  EXPECT_EQ(run_command(kUmbra + " pack idx --out x").rc, 2);    // --images missing
  EXPECT_EQ(run_command(kUmbra + " pack fashion-mnist --out x --compression lz4").rc, 2);

  CommandResult r = run_command(kUmbra + " inspect " + dir.path());
  EXPECT_EQ(r.rc, 1);
  std::printf("[bad input] %s\n", error_line(r.output).c_str());
  EXPECT_TRUE(contains(error_line(r.output), "manifest.json: missing")) << r.output;

  write_bytes(dir / "images", std::vector<char>(100, 0));
  write_bytes(dir / "labels", std::vector<char>(100, 0));
  r = run_command(kUmbra + " pack idx --images " + dir / "images" + " --labels " + dir / "labels" +
                  " --out " + dir / "idx");
  EXPECT_EQ(r.rc, 1);
  std::printf("[bad input] %s\n", error_line(r.output).c_str());
  EXPECT_TRUE(contains(error_line(r.output), "images: wrong magic number 0x00000000")) << r.output;
  EXPECT_FALSE(fs::exists(dir / "idx"));

  fs::create_directories(dir / "png/cat");
  const std::vector<uint8_t> px(16, 7);
  write_png(dir / "png/cat/a.png", px.data(), 4, 4, 1);
  write_png(dir / "png/cat/b.png", px.data(), 2, 8, 1);
  r = run_command(kUmbra + " pack images --source " + dir / "png" + " --out " + dir / "img");
  EXPECT_EQ(r.rc, 1);
  std::printf("[bad input] %s\n", error_line(r.output).c_str());
  EXPECT_TRUE(contains(error_line(r.output), "b.png: image is 2x8 with 1 channel(s), expected 4x4"))
      << r.output;
  fs::remove(dir / "png/cat/b.png");
  r = run_command(kUmbra + " pack images --source " + dir / "png" + " --out " + dir / "img " +
                  "--test-fraction 0");
  EXPECT_EQ(r.rc, 0) << r.output;
  r = run_command(kUmbra + " inspect " + dir / "img");
  EXPECT_EQ(r.rc, 0) << r.output;
}

}  // namespace
}  // namespace umbra
