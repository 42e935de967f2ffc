#include "trainer/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/check.h"
#include "core/log.h"
#include "core/sha256.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

constexpr const char* kPayload[] = {"model.safetensors", "ema.safetensors", "optimizer.safetensors",
                                    "state.json"};

std::optional<int64_t> step_of(const fs::path& p) {
  static const std::regex kName("step_([0-9]+)");
  std::smatch m;
  const std::string name = p.filename().string();
  if (!std::regex_match(name, m, kName)) return std::nullopt;
  return std::stoll(m[1].str());
}

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& root) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return found;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory()) continue;
    if (auto step = step_of(entry.path())) found.emplace_back(*step, entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void write_sha256sums(const std::string& dir, const std::vector<std::string>& relative_files) {
  const std::string path = dir + "/SHA256SUMS";
  std::ofstream out(path);
  UMBRA_CHECK(out.good(), path, ": cannot open for writing");
  for (const auto& rel : relative_files) out << sha256_file(dir + "/" + rel) << "  " << rel << "\n";
  out.close();
  UMBRA_CHECK(out.good(), path, ": write failed");
  fsync_path(path);
}

std::vector<std::string> check_sha256sums(const std::string& dir) {
  const std::string path = dir + "/SHA256SUMS";
  std::ifstream in(path);
  UMBRA_CHECK(in.good(), path, ": missing");
  std::vector<std::string> bad;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    UMBRA_CHECK(line.size() > 66 && line.compare(64, 2, "  ") == 0, path, ":", line_no,
                ": expected '<64 hex digits>  <file>'");
    const std::string want = line.substr(0, 64);
    const std::string rel = line.substr(66);
    std::error_code ec;
    if (!fs::is_regular_file(dir + "/" + rel, ec) || sha256_file(dir + "/" + rel) != want) {
      bad.push_back(rel);
    }
  }
  return bad;
}

std::string write_checkpoint(const std::string& run_dir, int64_t step, const Checkpoint& ckpt,
                             int keep) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  fs::create_directories(root, ec);
  UMBRA_CHECK(!ec, root.string(), ": cannot create: ", ec.message());
  // Leftovers of an interrupted write.
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(entry.path(), ec);
  }
  const fs::path final_dir = root / ("step_" + std::to_string(step));
  const fs::path tmp =
      root / (".tmp-step_" + std::to_string(step) + "-" + std::to_string(::getpid()));
  fs::create_directories(tmp, ec);
  UMBRA_CHECK(!ec, tmp.string(), ": cannot create: ", ec.message());

  save_safetensors((tmp / "model.safetensors").string(), ckpt.model);
  save_safetensors((tmp / "ema.safetensors").string(), ckpt.ema);
  save_safetensors((tmp / "optimizer.safetensors").string(), ckpt.optimizer);
  {
    const std::string path = (tmp / "state.json").string();
    std::ofstream out(path);
    out << ckpt.state.dump(2) << "\n";
    out.close();
    UMBRA_CHECK(out.good(), path, ": write failed");
    fsync_path(path);
  }
  write_sha256sums(tmp.string(), {std::begin(kPayload), std::end(kPayload)});
  fsync_path(tmp.string());
  if (fs::exists(final_dir)) fs::remove_all(final_dir, ec);  // re-saving the same step
  fs::rename(tmp, final_dir, ec);
  UMBRA_CHECK(!ec, final_dir.string(), ": cannot rename the completed checkpoint: ", ec.message());
  fsync_path(root.string());

  if (keep > 0) {
    auto all = complete_checkpoints(root);
    for (size_t i = 0; i + keep < all.size(); ++i) fs::remove_all(all[i].second, ec);
  }
  return final_dir.string();
}

bool verify_checkpoint(const std::string& dir, std::string* why) {
  try {
    std::ifstream in(dir + "/SHA256SUMS");
    std::string listed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const char* f : kPayload) {
      if (listed.find(std::string("  ") + f) == std::string::npos) {
        if (why) *why = std::string(f) + " is not listed in SHA256SUMS";
        return false;
      }
    }
    const auto bad = check_sha256sums(dir);
    if (!bad.empty()) {
      if (why) *why = bad.front() + " does not match its SHA-256";
      return false;
    }
  } catch (const Error& e) {
    if (why) *why = e.what();
    return false;
  }
  return true;
}

std::optional<std::string> find_latest_checkpoint(const std::string& run_dir) {
  auto all = complete_checkpoints(fs::path(run_dir) / "checkpoints");
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    std::string why;
    if (verify_checkpoint(it->second.string(), &why)) return it->second.string();
    spdlog::warn("checkpoint {} is damaged ({}); trying an older one", it->second.string(), why);
  }
  return std::nullopt;
}

Checkpoint read_checkpoint(const std::string& dir) {
  std::string why;
  UMBRA_CHECK(verify_checkpoint(dir, &why), dir, ": checkpoint does not verify: ", why);
  Checkpoint c;
  c.model = load_safetensors(dir + "/model.safetensors").tensors;
  c.ema = load_safetensors(dir + "/ema.safetensors").tensors;
  c.optimizer = load_safetensors(dir + "/optimizer.safetensors").tensors;
  std::ifstream in(dir + "/state.json");
  try {
    c.state = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    UMBRA_FAIL(dir, "/state.json: invalid JSON: ", e.what());
  }
  return c;
}

}  // namespace umbra
