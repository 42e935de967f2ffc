// Shared fixtures of the audit tests: real Fashion-MNIST images, temporary directories, and running
// the Python reference scripts next to the tests.
#pragma once

#include <torch/torch.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/pixels.h"
#include "data/idx.h"

namespace umbra::audit_test {

// Images [N, 1, 28, 28] float in [-1, 1] and labels [N] int64.
struct ImageSet {
  torch::Tensor images;
  torch::Tensor labels;
};

inline ImageSet load_fmnist(const std::string& prefix) {
  const std::string dir = kFashionMnistDir;
  const IdxImages idx = read_idx_pair(dir + "/" + prefix + "-images-idx3-ubyte.gz",
                                      dir + "/" + prefix + "-labels-idx1-ubyte.gz");
  ImageSet s;
  s.images =
      pixels_to_model(torch::from_blob(const_cast<uint8_t*>(idx.images.data()),
                                       {idx.count(), 1, idx.height, idx.width}, torch::kUInt8));
  s.labels = torch::tensor(idx.labels, torch::kInt64);
  return s;
}

inline const ImageSet& fmnist_train() {
  static const ImageSet s = load_fmnist("train");
  return s;
}

inline const ImageSet& fmnist_test() {
  static const ImageSet s = load_fmnist("t10k");
  return s;
}

inline std::filesystem::path temp_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::temp_directory_path() /
                            ("umbra_audit_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

inline std::string script(const std::string& name) {
  return std::string(UMBRA_SOURCE_DIR) + "/tests/audit/" + name;
}

// Runs a shell command; returns its stdout and sets *status to the exit status.
inline std::string run_command(const std::string& command, int* status) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
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

// Runs tests/audit/<name> with the reference Python (torch/numpy available there).
inline std::string run_python(const std::string& name, const std::string& args, int* status) {
  return run_command(std::string(UMBRA_PYTHON) + " " + script(name) + " " + args + " 2>&1", status);
}

// Raw little-endian float64 dump of a tensor (row-major), for the Python references.
inline void write_f64(const std::filesystem::path& path, const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kFloat64).contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(c.data_ptr<double>()),
            static_cast<std::streamsize>(c.numel() * sizeof(double)));
}

}  // namespace umbra::audit_test
