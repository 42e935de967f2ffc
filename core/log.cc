#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <filesystem>

#include "core/check.h"

namespace umbra {
namespace {
int g_rank = 0;
}

void init_logging(int rank, const std::string& log_dir, bool verbose) {
  g_rank = rank;
  std::vector<spdlog::sink_ptr> sinks;
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_level(rank == 0 ? (verbose ? spdlog::level::debug : spdlog::level::info)
                               : spdlog::level::warn);
  console->set_pattern(rank == 0 ? "[%H:%M:%S] %^%l%$ %v"
                                 : "[%H:%M:%S] [rank " + std::to_string(rank) + "] %^%l%$ %v");
  sinks.push_back(console);
  if (!log_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(log_dir, ec);
    UMBRA_CHECK(!ec, log_dir, ": cannot create log directory: ", ec.message());
    const std::string path = log_dir + "/rank" + std::to_string(rank) + ".log";
    try {
      auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
      file->set_level(spdlog::level::debug);
      file->set_pattern("%Y-%m-%dT%H:%M:%S.%e [rank " + std::to_string(rank) + "] %l %v");
      sinks.push_back(file);
    } catch (const spdlog::spdlog_ex& e) {
      UMBRA_FAIL(path, ": cannot open log file: ", e.what());
    }
  }
  auto logger = std::make_shared<spdlog::logger>("umbra", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::debug);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

int log_rank() { return g_rank; }

}  // namespace umbra
