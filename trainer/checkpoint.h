// Checkpoints (DESIGN.md §8): runs/<name>/checkpoints/step_<n>/ holding
//   model.safetensors, ema.safetensors, optimizer.safetensors, state.json, SHA256SUMS.
// A checkpoint is written under a temporary name and renamed when complete, after SHA256SUMS
// (written last) and an fsync of every file: a process killed mid-write leaves only a
// `.tmp-*` directory, which is never picked and is cleaned up by the next write.
// Only rank 0 calls write_checkpoint.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/safetensors.h"

namespace umbra {

struct Checkpoint {
  TensorMap model;
  TensorMap ema;
  TensorMap optimizer;
  nlohmann::json state;  // step, sampler state, RNG state, accountant history, config hash, ...
};

// Writes <run_dir>/checkpoints/step_<step>/ atomically and returns its path. Keeps at most
// `keep` complete checkpoints (oldest removed first; 0 keeps all).
std::string write_checkpoint(const std::string& run_dir, int64_t step, const Checkpoint& ckpt,
                             int keep = 3);

// True when every file listed in <dir>/SHA256SUMS exists and matches, and the four payload files
// are listed. Never throws for a damaged checkpoint; `why` says what is wrong.
bool verify_checkpoint(const std::string& dir, std::string* why = nullptr);

// The newest complete checkpoint under <run_dir>/checkpoints that verifies (damaged ones are
// skipped with a warning), or nothing.
std::optional<std::string> find_latest_checkpoint(const std::string& run_dir);

// Verifies, then loads. Throws umbra::Error naming the directory and file on any problem.
Checkpoint read_checkpoint(const std::string& dir);

// SHA256SUMS helpers shared with the release bundle: "<hex>  <relative path>" per line.
void write_sha256sums(const std::string& dir, const std::vector<std::string>& relative_files);
// Returns the relative paths that are missing or mismatched (empty = all good). Throws when the
// SHA256SUMS file itself is missing or malformed.
std::vector<std::string> check_sha256sums(const std::string& dir);

// fsync a file or directory by path (best effort on directories).
void fsync_path(const std::string& path);

}  // namespace umbra
