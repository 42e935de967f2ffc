#include "monitoring/file_sd.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "monitoring/atomic_file.h"

namespace umbra {

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
  write_file_atomically(path, groups.dump(2) + "\n", "file_sd target file");
}

std::string file_sd_path(const std::string& runs_dir, const std::string& run_name) {
  return runs_dir + "/prometheus_targets/" + run_name + ".json";
}

}  // namespace umbra
