// Per-rank logging on spdlog.
//
// Rank 0 logs info and above to the console; other ranks only warnings and errors (so N ranks do
// not print N copies). With a log directory, every rank also writes everything at debug level to
// <dir>/rank<r>.log. Thread-safe (spdlog's _mt sinks).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace umbra {

// Call once per process; safe to call again (e.g. when the run directory becomes known).
void init_logging(int rank, const std::string& log_dir = "", bool verbose = false);

int log_rank();

}  // namespace umbra
