#include "trainer/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace umbra {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", static_cast<long>(s / 3600),
                  static_cast<long>(s % 3600 / 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", static_cast<long>(s / 60),
                  static_cast<long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lds", static_cast<long>(s));
  }
  return buf;
}

Progress::Progress(std::string stage, int64_t first_step, int64_t max_steps, bool enabled)
    : stage_(std::move(stage)),
      first_(first_step),
      max_(max_steps),
      enabled_(enabled),
      tty_(enabled && ::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t step, double loss, double images_per_s,
                      std::optional<double> epsilon) {
  if (!enabled_) return;
  const int64_t done = step + 1;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = static_cast<double>(done - first_) / std::max(elapsed, 1e-9);
  const double eta = static_cast<double>(max_ - done) / std::max(rate, 1e-9);
  char eps[48] = "";
  if (epsilon) std::snprintf(eps, sizeof eps, " | eps %.3f", *epsilon);
  char line[256];
  std::snprintf(line, sizeof line, "%s %ld/%ld | loss %.5g | %.0f img/s%s | ETA %s", stage_.c_str(),
                static_cast<long>(done), static_cast<long>(max_), loss, images_per_s, eps,
                format_duration(eta).c_str());
  last_line_ = line;
  if (tty_) {
    const int width = 24;
    const int filled = max_ > 0 ? static_cast<int>(width * done / max_) : width;
    std::fprintf(stderr, "\r[%s%s] %s\033[K", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), line);
    drawn_ = true;
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

void Progress::message(const std::string& text) {
  if (!enabled_) return;
  if (drawn_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", text.c_str());
  drawn_ = false;
  std::fflush(stderr);
}

void Progress::finish() {
  if (enabled_ && drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace umbra
