#include "monitoring/jsonl_log.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/log.h"

namespace umbra {

namespace {

bool reserved_key(const std::string& key) {
  return key == "stage" || key == "step" || key == "time" || key == "loss" || key == "lr" ||
         key == "images_per_s" || key == "epsilon";
}

nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nullptr; }

double read_number(const nlohmann::json& j, const std::string& key, const std::string& where) {
  if (j.is_null()) return std::numeric_limits<double>::quiet_NaN();
  UMBRA_CHECK(j.is_number(), where, ": '", key, "' should be a number, got ", j.dump());
  return j.get<double>();
}

}  // namespace

std::string to_json_line(const StepRecord& r) {
  // ordered_json keeps the documented key order, which makes the file easy to read by eye.
  nlohmann::ordered_json j;
  j["stage"] = r.stage;
  j["step"] = r.step;
  j["time"] = number(r.time);
  j["loss"] = number(r.loss);
  j["lr"] = number(r.lr);
  j["images_per_s"] = number(r.images_per_s);
  if (r.epsilon) j["epsilon"] = number(*r.epsilon);
  for (const auto& [key, value] : r.extra) {
    UMBRA_ASSERT(!reserved_key(key), "StepRecord::extra key '", key, "' shadows a fixed field");
    j[key] = number(value);
  }
  return j.dump();
}

JsonlLog::JsonlLog(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "ae");
  UMBRA_CHECK(file_ != nullptr, "metrics log '", path, "': cannot open for appending (",
              std::strerror(errno), ")");
}

JsonlLog::~JsonlLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void JsonlLog::write(const StepRecord& record) {
  const std::string line = to_json_line(record) + "\n";
  const bool ok =
      std::fwrite(line.data(), 1, line.size(), file_) == line.size() && std::fflush(file_) == 0;
  UMBRA_CHECK(ok, "metrics log '", path_, "': write failed (", std::strerror(errno), ")");
}

std::vector<StepRecord> read_jsonl_log(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  UMBRA_CHECK(in.good(), "metrics log '", path, "': cannot open (", std::strerror(errno), ")");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  // getline drops the final '\n', so a last line the writer did not finish has none in the file.
  in.clear();
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::streamoff>(in.tellg());
  bool last_line_complete = true;
  if (size > 0) {
    in.seekg(size - 1);
    last_line_complete = in.get() == '\n';
  }

  std::vector<StepRecord> records;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const std::string where = path + ":" + std::to_string(i + 1);
    nlohmann::json j = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() && i + 1 == lines.size() && !last_line_complete) {
      spdlog::warn("{}: skipping a truncated last record (the run stopped while writing it)",
                   where);
      break;
    }
    UMBRA_CHECK(!j.is_discarded() && j.is_object(), where,
                ": not a JSON object: ", lines[i].substr(0, 200));
    UMBRA_CHECK(j.contains("stage") && j["stage"].is_string(), where,
                ": missing string field 'stage'");
    UMBRA_CHECK(j.contains("step") && j["step"].is_number_integer(), where,
                ": missing integer field 'step'");
    StepRecord r;
    r.stage = j["stage"].get<std::string>();
    r.step = j["step"].get<int64_t>();
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      if (key == "stage" || key == "step") continue;
      if (key == "time") {
        r.time = read_number(*it, key, where);
      } else if (key == "loss") {
        r.loss = read_number(*it, key, where);
      } else if (key == "lr") {
        r.lr = read_number(*it, key, where);
      } else if (key == "images_per_s") {
        r.images_per_s = read_number(*it, key, where);
      } else if (key == "epsilon") {
        r.epsilon = read_number(*it, key, where);
      } else if (it->is_number() || it->is_null()) {
        r.extra[key] = read_number(*it, key, where);
      }
    }
    // A resumed run logs again from its checkpoint: drop what the new record supersedes.
    while (!records.empty()) {
      auto last = std::find_if(records.rbegin(), records.rend(),
                               [&](const StepRecord& p) { return p.stage == r.stage; });
      if (last == records.rend() || last->step < r.step) break;
      records.erase(std::next(last).base());
    }
    records.push_back(std::move(r));
  }
  return records;
}

std::string jsonl_log_path(const std::string& run_dir) { return run_dir + "/metrics.jsonl"; }

}  // namespace umbra
