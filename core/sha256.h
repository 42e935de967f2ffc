// SHA-256 (OpenSSL libcrypto) of buffers and files, as lowercase hex.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace umbra {

// Incremental hasher: update() any number of times, then hex() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  std::string hex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(const void* data, size_t size);
// Throws umbra::Error naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace umbra
