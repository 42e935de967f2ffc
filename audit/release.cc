#include "audit/release.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "audit/text_file.h"
#include "core/check.h"
#include "core/png.h"
#include "core/safetensors.h"
#include "trainer/checkpoint.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

void check_file_name(const std::string& name, const std::string& what) {
  UMBRA_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." && name != ".." &&
                  name.find('\0') == std::string::npos,
              "release: ", what, " name '", name, "' must be a plain file name");
}

void check_number_or_null(const nlohmann::json& obj, const std::string& key,
                          const std::string& where) {
  UMBRA_CHECK(obj.contains(key), "privacy_report.json: ", where, "missing key '", key, "'");
  UMBRA_CHECK(obj[key].is_number() || obj[key].is_null(), "privacy_report.json: ", where, "'", key,
              "' must be a number or null, got ", obj[key].dump());
}

void copy_into(const std::string& source, const fs::path& dest, const std::string& what) {
  std::error_code ec;
  UMBRA_CHECK(fs::is_regular_file(source, ec), "release: ", what, " '", source,
              "' is not a readable file");
  fs::copy_file(source, dest, fs::copy_options::overwrite_existing, ec);
  UMBRA_CHECK(!ec, "release: cannot copy ", what, " '", source, "': ", ec.message());
  fsync_path(dest.string());
}

}  // namespace

void check_privacy_report(const nlohmann::json& report) {
  UMBRA_CHECK(report.is_object(), "privacy_report.json: expected a JSON object, got ",
              report.type_name());
  check_number_or_null(report, "epsilon", "");
  check_number_or_null(report, "delta", "");
  UMBRA_CHECK(report.contains("accountant") && report["accountant"].is_string(),
              "privacy_report.json: 'accountant' must be a string");
  UMBRA_CHECK(
      report.contains("stages") && report["stages"].is_object() && !report["stages"].empty(),
      "privacy_report.json: 'stages' must be a non-empty object (one entry per stage)");
  for (const auto& [stage, params] : report["stages"].items()) {
    const std::string where = "stages." + stage + ": ";
    UMBRA_CHECK(params.is_object(), "privacy_report.json: ", where, "expected an object");
    for (const char* key : {"noise_multiplier", "max_grad_norm", "sample_rate", "steps"}) {
      check_number_or_null(params, key, where);
    }
  }
}

std::vector<std::string> write_release(const std::string& out_dir,
                                       const ReleaseContents& contents) {
  const fs::path out = fs::absolute(fs::path(out_dir)).lexically_normal();
  const fs::path final_dir = out.filename().empty() ? out.parent_path() : out;
  std::error_code ec;
  UMBRA_CHECK(!fs::exists(final_dir, ec), "release: '", final_dir.string(),
              "' already exists; choose a new output directory");
  UMBRA_CHECK(!contents.weights.empty(), "release: no weights files given");
  check_privacy_report(contents.privacy_report);
  UMBRA_CHECK(contents.audit_summary.is_object(),
              "release: the audit summary must be a JSON object");
  std::set<std::string> names;
  for (const auto& [name, source] : contents.weights) {
    check_file_name(name, "weights file");
    UMBRA_CHECK(name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0,
                "release: weights file name '", name, "' must end in .safetensors");
    UMBRA_CHECK(names.insert("weights/" + name).second, "release: weights file '", name,
                "' given twice");
    load_safetensors(source);  // throws naming the file when it is not valid safetensors
  }
  for (const auto& [name, source] : contents.audit_files) {
    check_file_name(name, "audit file");
    UMBRA_CHECK(names.insert("audit/" + name).second && name != "summary.json",
                "release: audit file '", name, "' given twice or reserved");
  }
  read_png(contents.sample_grid);  // throws naming the file when it is not a PNG

  fs::create_directories(final_dir.parent_path(), ec);
  UMBRA_CHECK(!ec, "release: cannot create '", final_dir.parent_path().string(),
              "': ", ec.message());
  const fs::path tmp = final_dir.parent_path() /
                       (".tmp-" + final_dir.filename().string() + "-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  try {
    fs::create_directories(tmp / "weights");
    fs::create_directories(tmp / "audit");
    std::vector<std::string> files;
    for (const auto& [name, source] : contents.weights) {
      copy_into(source, tmp / "weights" / name, "weights file");
      files.push_back("weights/" + name);
    }
    for (const auto& [name, source] : contents.audit_files) {
      copy_into(source, tmp / "audit" / name, "audit file");
      files.push_back("audit/" + name);
    }
    copy_into(contents.sample_grid, tmp / "samples.png", "sample grid");
    files.push_back("samples.png");
    write_text_atomic((tmp / "config.yaml").string(), contents.config_yaml);
    write_text_atomic((tmp / "MODEL_CARD.md").string(), contents.model_card);
    write_text_atomic((tmp / "privacy_report.json").string(),
                      contents.privacy_report.dump(2) + "\n");
    write_text_atomic((tmp / "audit" / "summary.json").string(),
                      contents.audit_summary.dump(2) + "\n");
    for (const char* name :
         {"config.yaml", "MODEL_CARD.md", "privacy_report.json", "audit/summary.json"}) {
      files.push_back(name);
    }
    std::sort(files.begin(), files.end());
    write_sha256sums(tmp.string(), files);
    fsync_path((tmp / "weights").string());
    fsync_path((tmp / "audit").string());
    fsync_path(tmp.string());
    fs::rename(tmp, final_dir);
    fsync_path(final_dir.parent_path().string());
    return files;
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    UMBRA_FAIL("release: writing '", final_dir.string(), "' failed: ", e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

std::string ReleaseVerification::describe() const {
  if (ok()) return "OK";
  std::string out;
  auto add = [&out](const char* label, const std::vector<std::string>& files) {
    if (files.empty()) return;
    if (!out.empty()) out += "; ";
    out += label;
    out += ": ";
    for (size_t i = 0; i < files.size(); ++i) out += (i ? ", " : "") + files[i];
  };
  add("mismatched", mismatched);
  add("missing", missing);
  add("extra", extra);
  return out;
}

ReleaseVerification verify_release(const std::string& dir) {
  std::error_code ec;
  UMBRA_CHECK(fs::is_directory(dir, ec), dir, ": not a release directory");
  ReleaseVerification v;
  for (const std::string& rel : check_sha256sums(dir)) {
    (fs::exists(fs::path(dir) / rel, ec) ? v.mismatched : v.missing).push_back(rel);
  }
  // Listed names, to find extra files.
  std::set<std::string> listed;
  {
    const std::string sums = read_text_file(dir + "/SHA256SUMS");
    size_t start = 0;
    while (start < sums.size()) {
      size_t end = sums.find('\n', start);
      if (end == std::string::npos) end = sums.size();
      if (end - start > 66) listed.insert(sums.substr(start + 66, end - start - 66));
      start = end + 1;
    }
  }
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_directory(ec) && !it->is_symlink(ec)) continue;
    const std::string rel = fs::relative(it->path(), dir, ec).generic_string();
    if (rel != "SHA256SUMS" && !listed.count(rel)) v.extra.push_back(rel);
  }
  UMBRA_CHECK(!ec, dir, ": cannot list the release directory: ", ec.message());
  std::sort(v.extra.begin(), v.extra.end());
  return v;
}

void check_release(const std::string& dir) {
  const ReleaseVerification v = verify_release(dir);
  UMBRA_CHECK(v.ok(), dir, ": release verification failed: ", v.describe());
}

}  // namespace umbra
