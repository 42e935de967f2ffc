// Test support for monitoring checks against REAL training runs (`umbra train`, alone or under
// `mpirun -np 2`): a small Fashion-MNIST subset packed into shards, the command line for a short
// run of configs/tiny_test.yaml, a command running in the background while the test scrapes, and
// a socket that holds a port the way another program would.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "tests/monitoring/prometheus_server.h"

namespace umbra::test {

inline const std::string kUmbra = UMBRA_BINARY;
inline const std::string kFashionMnist = "/usr/share/datasets/fashion-mnist";

// Copies the first `count` items of a gzipped IDX file (images or labels) to an uncompressed IDX
// file with the item count patched. Returns false when the source is unreadable or too short.
inline bool write_idx_prefix(const std::string& gz_path, const std::string& out_path,
                             uint32_t count) {
  gzFile in = gzopen(gz_path.c_str(), "rb");
  if (in == nullptr) return false;
  unsigned char magic[4];
  bool ok = gzread(in, magic, 4) == 4 && magic[0] == 0 && magic[1] == 0;
  const int dims = ok ? magic[3] : 0;
  std::vector<unsigned char> header(4 + 4 * static_cast<size_t>(dims));
  std::copy(magic, magic + 4, header.begin());
  ok = ok && dims >= 1 && gzread(in, header.data() + 4, 4 * dims) == 4 * dims;
  size_t item_bytes = 1;
  for (int d = 1; ok && d < dims; ++d) {
    const unsigned char* p = &header[4 + 4 * static_cast<size_t>(d)];
    item_bytes *= (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
  }
  std::vector<unsigned char> body(item_bytes * count);
  ok = ok &&
       gzread(in, body.data(), static_cast<unsigned>(body.size())) == static_cast<int>(body.size());
  gzclose(in);
  if (!ok) return false;
  header[4] = static_cast<unsigned char>(count >> 24);
  header[5] = static_cast<unsigned char>(count >> 16);
  header[6] = static_cast<unsigned char>(count >> 8);
  header[7] = static_cast<unsigned char>(count);
  write_text_file(
      out_path, std::string(header.begin(), header.end()) + std::string(body.begin(), body.end()));
  return true;
}

// The first `train` training and `test` test images of Fashion-MNIST packed with `umbra pack idx`
// into <dir>/shards (a second or two, against ~10 s for all 70,000). Returns the shard directory;
// empty (with the reason in *why) on failure.
inline std::string pack_fashion_mnist_subset(const std::string& dir, uint32_t train, uint32_t test,
                                             std::string* why) {
  const std::string src = kFashionMnist + "/";
  const std::string raw = dir + "/idx";
  std::filesystem::create_directories(raw);
  if (!write_idx_prefix(src + "train-images-idx3-ubyte.gz", raw + "/train-images", train) ||
      !write_idx_prefix(src + "train-labels-idx1-ubyte.gz", raw + "/train-labels", train) ||
      !write_idx_prefix(src + "t10k-images-idx3-ubyte.gz", raw + "/test-images", test) ||
      !write_idx_prefix(src + "t10k-labels-idx1-ubyte.gz", raw + "/test-labels", test)) {
    *why = "cannot read the Fashion-MNIST IDX files in " + kFashionMnist;
    return "";
  }
  const std::string out = dir + "/shards";
  const CommandResult r =
      run_command(kUmbra + " pack idx --images " + raw + "/train-images --labels " + raw +
                  "/train-labels --test-images " + raw + "/test-images --test-labels " + raw +
                  "/test-labels --out " + shell_quote(out));
  if (r.exit_code != 0) {
    *why = "umbra pack idx failed:\n" + r.output;
    return "";
  }
  return out;
}

// `umbra train` of configs/tiny_test.yaml on `np` ranks (np == 1: no mpirun), with the run in
// <runs_dir>/<run_name> and extra `overrides` ("key=value ...").
inline std::string tiny_train_command(int np, const std::string& data, const std::string& runs_dir,
                                      const std::string& run_name, const std::string& overrides) {
  std::string cmd;
  if (np > 1)
    cmd = std::string(UMBRA_MPIEXEC) + " --oversubscribe --allow-run-as-root -np " +
          std::to_string(np) + " ";
  return cmd + kUmbra + " train --config " + std::string(UMBRA_SOURCE_DIR) +
         "/configs/tiny_test.yaml data.path=" + shell_quote(data) +
         " run.dir=" + shell_quote(runs_dir) + " run.name=" + run_name + " " + overrides;
}

// A shell command running on its own thread; the test polls done() and reads result() after.
class BackgroundCommand {
 public:
  explicit BackgroundCommand(const std::string& command)
      : thread_([this, command] {
          result_ = run_command(command);
          done_ = true;
        }) {}
  ~BackgroundCommand() {
    if (thread_.joinable()) thread_.join();
  }
  BackgroundCommand(const BackgroundCommand&) = delete;
  BackgroundCommand& operator=(const BackgroundCommand&) = delete;

  bool done() const { return done_; }
  // Waits for the command to end.
  const CommandResult& result() {
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  CommandResult result_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// A socket listening on 127.0.0.1:`port`, standing for another program that holds the port.
class PortHolder {
 public:
  explicit PortHolder(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    holding_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
               listen(fd_, 4) == 0;
  }
  ~PortHolder() {
    if (fd_ >= 0) close(fd_);
  }
  PortHolder(const PortHolder&) = delete;
  PortHolder& operator=(const PortHolder&) = delete;
  bool holding() const { return holding_; }

 private:
  int fd_ = -1;
  bool holding_ = false;
};

// "host:port" -> port.
inline int port_of(const std::string& address) {
  return std::stoi(address.substr(address.rfind(':') + 1));
}

}  // namespace umbra::test
