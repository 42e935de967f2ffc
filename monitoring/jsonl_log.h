// The run's metric log, <run>/metrics.jsonl (DESIGN.md §8): one JSON object per logged step,
// appended by rank 0 and read back for the report (loss and epsilon curves).
//
//   {"stage":"prior","step":200,"time":1732470000.25,"loss":0.081,"lr":0.0002,
//    "images_per_s":1510.4,"epsilon":3.2,"grad_norm":0.74}
//
// Keys: stage, step, time (unix seconds), loss, lr, images_per_s, epsilon (only when training
// privately), then any extra figures by name. A non-finite value (a NaN loss) is written as null
// and read back as NaN. Each record is flushed to the OS when written, so a crash loses at most the
// line being written; the reader skips such a truncated last line with a warning.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace umbra {

struct StepRecord {
  std::string stage;
  int64_t step = 0;
  double time = 0.0;  // unix seconds when the step was logged
  double loss = 0.0;
  double lr = 0.0;
  double images_per_s = 0.0;
  std::optional<double> epsilon;        // privacy spent so far; absent for non-private runs
  std::map<std::string, double> extra;  // more figures by name (grad_norm, clip_fraction, ...)
};

// Appends records to a JSONL file (created when missing, never truncated: a resumed run appends).
// Not thread-safe: one writer (rank 0's training thread) per file.
class JsonlLog {
 public:
  explicit JsonlLog(const std::string& path);
  ~JsonlLog();
  JsonlLog(const JsonlLog&) = delete;
  JsonlLog& operator=(const JsonlLog&) = delete;

  // Writes one line and flushes it; throws umbra::Error naming the file when that fails.
  void write(const StepRecord& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// One record as the single-line JSON object the log holds (no trailing newline).
std::string to_json_line(const StepRecord& record);

// Reads a metrics.jsonl back in file order. A resumed run appends steps it had already logged
// after its last checkpoint; such a record supersedes the earlier ones of its stage from that step
// on, so each (stage, step) appears once and steps increase within a stage. Throws umbra::Error
// naming file:line for a malformed line other than a truncated last one.
std::vector<StepRecord> read_jsonl_log(const std::string& path);

// Where a run keeps its log: <run_dir>/metrics.jsonl.
std::string jsonl_log_path(const std::string& run_dir);

}  // namespace umbra
