// Rank 0's progress line: step, loss, images/s, epsilon spent, ETA. A bar redrawn in place on a
// terminal; plain lines (one per log interval) otherwise, e.g. in a batch job's log.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace umbra {

class Progress {
 public:
  Progress(std::string stage, int64_t first_step, int64_t max_steps, bool enabled);
  ~Progress();
  // After step `step` (0-based) finished.
  void update(int64_t step, double loss, double images_per_s, std::optional<double> epsilon);
  void finish();
  // A message printed above the bar (the bar is redrawn after it).
  void message(const std::string& text);

 private:
  std::string stage_;
  int64_t first_, max_;
  bool enabled_, tty_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::string last_line_;
};

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace umbra
