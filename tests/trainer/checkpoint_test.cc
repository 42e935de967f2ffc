#include "trainer/checkpoint.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/check.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

fs::path temp_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("umbra_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

Checkpoint make(int64_t step, int64_t floats = 16) {
  Checkpoint c;
  c.model["w"] = torch::arange(floats, torch::kFloat32) + static_cast<float>(step);
  c.ema["w"] = c.model["w"] * 0.5;
  c.optimizer["step"] = torch::tensor({step}, torch::kInt64);
  c.state = {{"step", step}, {"sampler", {{"seed", 1}, {"epoch", 0}, {"step", step}}}};
  return c;
}

void flip_byte(const fs::path& file, int64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c ^= 0x5a;
  f.seekp(offset);
  f.write(&c, 1);
}

TEST(Checkpoint, RoundTripAndNewestWins) {
  const fs::path run = temp_dir("roundtrip");
  write_checkpoint(run.string(), 1, make(1));
  const std::string p2 = write_checkpoint(run.string(), 2, make(2));
  const auto latest = find_latest_checkpoint(run.string());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(*latest, p2);
  const Checkpoint back = read_checkpoint(*latest);
  EXPECT_TRUE(torch::equal(back.model.at("w"), make(2).model.at("w")));
  EXPECT_EQ(back.state["step"].get<int64_t>(), 2);
  fs::remove_all(run);
}

TEST(Checkpoint, KeepsOnlyTheNewest) {
  const fs::path run = temp_dir("keep");
  for (int64_t s = 1; s <= 5; ++s) write_checkpoint(run.string(), s, make(s), 2);
  EXPECT_FALSE(fs::exists(run / "checkpoints/step_3"));
  EXPECT_TRUE(fs::exists(run / "checkpoints/step_4"));
  EXPECT_TRUE(fs::exists(run / "checkpoints/step_5"));
  fs::remove_all(run);
}

TEST(Checkpoint, DamagedNewestIsSkippedAndNamed) {
  const fs::path run = temp_dir("damaged");
  const std::string p1 = write_checkpoint(run.string(), 1, make(1));
  const std::string p2 = write_checkpoint(run.string(), 2, make(2));
  flip_byte(fs::path(p2) / "model.safetensors", 100);
  std::string why;
  EXPECT_FALSE(verify_checkpoint(p2, &why));
  EXPECT_NE(why.find("model.safetensors"), std::string::npos) << why;
  EXPECT_EQ(find_latest_checkpoint(run.string()).value_or(""), p1);
  try {
    read_checkpoint(p2);
    FAIL() << "a damaged checkpoint was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  fs::remove_all(run);
}

// A writer killed with SIGKILL in the middle of a checkpoint leaves the previous one as the
// newest complete checkpoint.
TEST(Checkpoint, KilledMidWriteIsNeverPicked) {
  const fs::path run = temp_dir("killed");
  const std::string p1 = write_checkpoint(run.string(), 1, make(1));
  const Checkpoint big = make(2, 64 << 20);  // 256 MiB of model weights: a write that takes time
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    write_checkpoint(run.string(), 2, big);
    ::_exit(0);
  }
  // Kill as soon as the temporary directory appears.
  bool seen_tmp = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!seen_tmp && std::chrono::steady_clock::now() < deadline) {
    for (const auto& e : fs::directory_iterator(run / "checkpoints")) {
      if (e.path().filename().string().rfind(".tmp-", 0) == 0) seen_tmp = true;
    }
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(seen_tmp);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the writer finished before it could be killed";
  EXPECT_FALSE(fs::exists(run / "checkpoints/step_2"));
  EXPECT_EQ(find_latest_checkpoint(run.string()).value_or(""), p1);
  // The next write cleans the leftovers.
  write_checkpoint(run.string(), 3, make(3));
  for (const auto& e : fs::directory_iterator(run / "checkpoints")) {
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << e.path();
  }
  fs::remove_all(run);
}

}  // namespace
}  // namespace umbra
