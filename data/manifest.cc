#include "data/manifest.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/check.h"

namespace umbra {
namespace {

using nlohmann::json;

// Far above any real shard; keeps sums of counts from overflowing.
constexpr int64_t kMaxShardCount = int64_t{1} << 40;

const json& field(const json& obj, const std::string& key, const std::string& where) {
  UMBRA_CHECK(obj.is_object(), where, ": expected a JSON object");
  const auto it = obj.find(key);
  UMBRA_CHECK(it != obj.end(), where, ": missing field '", key, "'");
  return *it;
}

int64_t int_field(const json& obj, const std::string& key, const std::string& where) {
  const json& v = field(obj, key, where);
  UMBRA_CHECK(v.is_number_integer(), where, ": field '", key, "' must be an integer, got ",
              v.dump());
  return v.get<int64_t>();
}

std::string string_field(const json& obj, const std::string& key, const std::string& where) {
  const json& v = field(obj, key, where);
  UMBRA_CHECK(v.is_string(), where, ": field '", key, "' must be a string, got ", v.dump());
  return v.get<std::string>();
}

bool is_hex_digest(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

ShardSummary parse_shard(const json& j, const std::string& where) {
  ShardSummary s;
  s.file = string_field(j, "file", where);
  UMBRA_CHECK(
      !s.file.empty() && s.file.find('/') == std::string::npos && s.file != "." && s.file != "..",
      where, ": field 'file' must be a plain file name in the dataset directory, got '", s.file,
      "'");
  const std::string at = where + " shard '" + s.file + "'";
  s.count = int_field(j, "count", at);
  s.id_first = int_field(j, "id_first", at);
  s.id_last = int_field(j, "id_last", at);
  s.sha256 = string_field(j, "sha256", at);
  s.content_sha256 = string_field(j, "content_sha256", at);
  UMBRA_CHECK(s.count >= 1 && s.count <= kMaxShardCount, at, ": count must be 1..", kMaxShardCount,
              ", got ", s.count);
  UMBRA_CHECK(s.id_first >= 0 && s.id_last >= s.id_first && s.id_last - s.id_first + 1 >= s.count,
              at, ": id range [", s.id_first, ", ", s.id_last, "] cannot hold ", s.count,
              " distinct non-negative ids");
  UMBRA_CHECK(is_hex_digest(s.sha256), at, ": sha256 must be 64 lowercase hex digits");
  UMBRA_CHECK(is_hex_digest(s.content_sha256), at,
              ": content_sha256 must be 64 lowercase hex digits");
  return s;
}

}  // namespace

Manifest Manifest::parse(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    UMBRA_FAIL(where, ": not valid JSON: ", e.what());
  }
  Manifest m;
  const int64_t version = int_field(j, "format_version", where);
  UMBRA_CHECK(version == kManifestFormatVersion, where, ": format_version must be ",
              kManifestFormatVersion, ", got ", version);
  m.name = string_field(j, "name", where);
  m.meta.source = string_field(j, "source", where);
  const json& names = field(j, "class_names", where);
  UMBRA_CHECK(names.is_array(), where, ": field 'class_names' must be an array of strings");
  for (const auto& n : names) {
    UMBRA_CHECK(n.is_string(), where, ": field 'class_names' must hold strings, got ", n.dump());
    m.meta.class_names.push_back(n.get<std::string>());
  }
  const int64_t num_classes = int_field(j, "num_classes", where);
  UMBRA_CHECK(num_classes == m.meta.num_classes(), where, ": num_classes is ", num_classes,
              " but class_names lists ", m.meta.num_classes(), " names");
  m.meta.height = int_field(j, "height", where);
  m.meta.width = int_field(j, "width", where);
  m.meta.channels = int_field(j, "channels", where);
  m.meta.validate(where);

  const json& splits = field(j, "splits", where);
  UMBRA_CHECK(splits.is_object() && !splits.empty(), where,
              ": field 'splits' must be an object of splits");
  std::set<std::string> files;
  for (const auto& [split_name, sj] : splits.items()) {
    const std::string at = where + " split '" + split_name + "'";
    SplitManifest sm;
    sm.count = int_field(sj, "count", at);
    const json& shards = field(sj, "shards", at);
    UMBRA_CHECK(shards.is_array(), at, ": field 'shards' must be an array");
    int64_t sum = 0;
    for (const auto& shard : shards) {
      sm.shards.push_back(parse_shard(shard, at));
      UMBRA_CHECK(files.insert(sm.shards.back().file).second, at, ": shard file '",
                  sm.shards.back().file, "' is listed twice");
      sum += sm.shards.back().count;
    }
    UMBRA_CHECK(sum == sm.count, at, ": count is ", sm.count, " but its shards hold ", sum);
    m.splits.emplace(split_name, std::move(sm));
  }
  UMBRA_CHECK(m.splits.count("train"), where, ": splits must include 'train'");
  return m;
}

Manifest Manifest::load(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kManifestFile).string();
  UMBRA_CHECK(std::filesystem::is_directory(dir), dir, ": not a dataset directory (expected a ",
              "directory holding ", kManifestFile, " and shards, as written by `umbra pack`)");
  std::ifstream in(path, std::ios::binary);
  UMBRA_CHECK(in.good(), path, ": missing or unreadable manifest (", std::strerror(errno),
              "); is this a directory written by `umbra pack`?");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

std::string Manifest::to_json_text() const {
  json j = json::object();
  j["format_version"] = kManifestFormatVersion;
  j["name"] = name;
  j["source"] = meta.source;
  j["num_classes"] = meta.num_classes();
  j["class_names"] = meta.class_names;
  j["height"] = meta.height;
  j["width"] = meta.width;
  j["channels"] = meta.channels;
  json splits_json = json::object();
  for (const auto& [split_name, sm] : splits) {
    json shards = json::array();
    for (const auto& s : sm.shards)
      shards.push_back({{"file", s.file},
                        {"count", s.count},
                        {"id_first", s.id_first},
                        {"id_last", s.id_last},
                        {"sha256", s.sha256},
                        {"content_sha256", s.content_sha256}});
    splits_json[split_name] = {{"count", sm.count}, {"shards", shards}};
  }
  j["splits"] = splits_json;
  return j.dump(2) + "\n";
}

void Manifest::save(const std::string& dir) const {
  const auto path = std::filesystem::path(dir) / kManifestFile;
  const auto tmp = std::filesystem::path(dir) / (std::string(kManifestFile) + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    UMBRA_CHECK(out.good(), tmp.string(), ": cannot write: ", std::strerror(errno));
    out << to_json_text();
    out.flush();
    UMBRA_CHECK(out.good(), tmp.string(), ": write failed: ", std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  UMBRA_CHECK(!ec, path.string(), ": cannot rename manifest into place: ", ec.message());
}

const SplitManifest& Manifest::split(const std::string& name, const std::string& where) const {
  const auto it = splits.find(name);
  if (it == splits.end()) {
    std::string have;
    for (const auto& [n, s] : splits) have += (have.empty() ? "" : ", ") + n;
    UMBRA_FAIL(where, ": no split '", name, "' (the manifest has: ", have, ")");
  }
  return it->second;
}

int64_t Manifest::total_count() const {
  int64_t total = 0;
  for (const auto& [n, s] : splits) total += s.count;
  return total;
}

}  // namespace umbra
