// Shared helpers of the data tests: temporary directories, running the reference Python and the
// umbra binary, small synthetic datasets, and error-message checks.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/check.h"
#include "data/dataset_writer.h"
#include "data/shard.h"

namespace umbra::test_util {

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "umbra-data-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int rc = -1;
  std::string output;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Runs `script` with the reference Python (numpy, h5py); fails the test on a non-zero exit.
inline std::string run_python(const std::string& script, const std::string& dir,
                              const std::string& args = "") {
  const std::string path = dir + "/script.py";
  std::ofstream(path) << script;
  const CommandResult r = run_command(std::string(UMBRA_PYTHON) + " " + path + " " + args);
  EXPECT_EQ(r.rc, 0) << r.output;
  return r.output;
}

// Expects fn to throw umbra::Error whose message contains every needle; prints the message
// (the test log is where the exact wording of each bad-input error is reviewed).
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "expected umbra::Error mentioning " << (needles.empty() ? "" : needles[0]);
  } catch (const Error& e) {
    const std::string msg = e.what();
    std::printf("[bad input] %s\n", msg.c_str());
    for (const auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "message '" << msg << "' lacks '" << n << "'";
  }
}

inline DatasetMeta tiny_meta(int64_t channels = 1, int64_t height = 4, int64_t width = 5,
                             int64_t classes = 3) {
  DatasetMeta m;
  m.source = "synthetic";
  m.channels = channels;
  m.height = height;
  m.width = width;
  for (int64_t k = 0; k < classes; ++k) m.class_names.push_back("class" + std::to_string(k));
  return m;
}

// n images whose pixel bytes are a pure function of (id, byte index), labels id % classes.
struct Synthetic {
  std::vector<uint8_t> images;
  std::vector<int64_t> labels, ids;
};
inline Synthetic synthetic(const DatasetMeta& meta, int64_t first_id, int64_t n) {
  Synthetic s;
  const int64_t bytes = meta.image_bytes();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = first_id + i;
    for (int64_t b = 0; b < bytes; ++b)
      s.images.push_back(static_cast<uint8_t>((id * 31 + b * 7) % 256));
    s.labels.push_back(id % meta.num_classes());
    s.ids.push_back(id);
  }
  return s;
}

// A dataset with `train` and `test` images (ids 0.. then train..), shards of shard_size.
inline Manifest write_synthetic_dataset(const std::string& out, const DatasetMeta& meta,
                                        int64_t train, int64_t test, int64_t shard_size,
                                        Compression compression = Compression::kGzip) {
  PackOptions o;
  o.shard_size = shard_size;
  o.shard.compression = compression;
  DatasetWriter w(out, "synthetic", meta, o);
  Synthetic a = synthetic(meta, 0, train);
  w.add("train", a.images.data(), a.labels.data(), a.ids.data(), train);
  if (test > 0) {
    Synthetic b = synthetic(meta, train, test);
    w.add("test", b.images.data(), b.labels.data(), b.ids.data(), test);
  }
  return w.finish();
}

inline std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
inline void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace umbra::test_util
