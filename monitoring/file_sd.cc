#include "monitoring/file_sd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/check.h"

namespace umbra {

namespace {

// Writes all of `text` to a temporary sibling of `path`, fsyncs it and renames it over `path`.
void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  UMBRA_CHECK(fd >= 0, "file_sd target file '", tmp, "': cannot create (", std::strerror(errno),
              ")");
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      close(fd);
      unlink(tmp.c_str());
      UMBRA_FAIL("file_sd target file '", tmp, "': write failed (", std::strerror(err), ")");
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = fsync(fd) == 0;
  const int sync_err = errno;
  close(fd);
  if (!synced) {
    unlink(tmp.c_str());
    UMBRA_FAIL("file_sd target file '", tmp, "': fsync failed (", std::strerror(sync_err), ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    UMBRA_FAIL("file_sd target file '", path, "': rename from '", tmp, "' failed (",
               std::strerror(err), ")");
  }
}

}  // namespace

void write_file_sd(const std::string& path, const std::vector<ScrapeTarget>& targets) {
  nlohmann::json groups = nlohmann::json::array();
  for (const ScrapeTarget& t : targets) {
    if (t.address.empty()) continue;
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [name, value] : t.labels) {
      UMBRA_CHECK(is_valid_label_name(name) && name.rfind("__", 0) != 0, "file_sd target ",
                  t.address, ": label name '", name, "' is not a valid Prometheus label name");
      labels[name] = value;
    }
    groups.push_back({{"targets", nlohmann::json::array({t.address})}, {"labels", labels}});
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    UMBRA_CHECK(!ec, "file_sd target file '", path, "': cannot create directory '", parent.string(),
                "' (", ec.message(), ")");
  }
  write_file_atomically(path, groups.dump(2) + "\n");
}

std::string file_sd_path(const std::string& runs_dir, const std::string& run_name) {
  return runs_dir + "/prometheus_targets/" + run_name + ".json";
}

}  // namespace umbra
