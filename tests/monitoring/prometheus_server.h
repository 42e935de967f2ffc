// Test support for checks against a REAL Prometheus (Debian's `prometheus` and `promtool`):
// a temporary directory, running a command, a free loopback port, and a Prometheus server started
// from the shipped monitoring/prometheus/prometheus.yml with its file_sd pointed at a test's target
// file. Loopback only; every wait is bounded. Used by the monitoring tests and meant for the
// 2-rank training test (label mpi) as well:
//
//   TempDir dir;
//   write_file_sd(dir.path() + "/targets.json", targets);
//   PrometheusServer prom(dir.path(), dir.path() + "/targets.json");
//   ASSERT_TRUE(prom.wait_ready(20)) << prom.log_tail();
//   nlohmann::json series = prom.query("umbra_steps_total");   // data.result of /api/v1/query
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/monitoring/http_get.h"

namespace umbra::test {

inline constexpr const char* kPrometheusBinary = "/usr/bin/prometheus";
inline constexpr const char* kPromtoolBinary = "/usr/bin/promtool";

inline bool executable_exists(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/umbra_mon_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `command` through /bin/sh with stderr folded into stdout.
inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

// `promtool check metrics` on a scrape; exit_code 0 and empty output mean no lint findings.
// Callers skip when promtool is missing (executable_exists(kPromtoolBinary)).
inline CommandResult promtool_check_metrics(const std::string& exposition) {
  char path[] = "/tmp/umbra_scrape_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  close(fd);
  write_text_file(path, exposition);
  CommandResult r = run_command(std::string(kPromtoolBinary) + " check metrics < " + path);
  unlink(path);
  return r;
}

// A loopback port that was free a moment ago (the OS picked it; a racing process could take it).
inline int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// Polls `condition` every `interval_s` until it returns true or `timeout_s` passes.
template <class F>
bool wait_for(F&& condition, double timeout_s, double interval_s = 0.25) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int>(timeout_s * 1e3));
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(interval_s * 1e3)));
  }
}

// The shipped monitoring/prometheus/prometheus.yml with its file_sd pointed at `target_file`, and
// the scrape interval (and timeout) set to `scrape_interval_s`.
inline std::string prometheus_config_for(const std::string& target_file, double scrape_interval_s) {
  YAML::Node config =
      YAML::LoadFile(std::string(UMBRA_SOURCE_DIR) + "/monitoring/prometheus/prometheus.yml");
  const std::string interval = std::to_string(static_cast<int>(scrape_interval_s * 1000)) + "ms";
  config["global"]["scrape_interval"] = interval;
  config["global"]["scrape_timeout"] = interval;
  config["global"]["evaluation_interval"] = interval;
  YAML::Node files(YAML::NodeType::Sequence);
  files.push_back(target_file);
  config["scrape_configs"][0]["file_sd_configs"][0]["files"] = files;
  config["scrape_configs"][0]["file_sd_configs"][0]["refresh_interval"] = "1s";
  YAML::Emitter out;
  out << config;
  return std::string(out.c_str()) + "\n";
}

// A Prometheus server on 127.0.0.1 scraping the targets in `target_file`. Its config, TSDB and
// log live in `workdir`. Stopped (SIGTERM, then SIGKILL after 10 s) on destruction.
class PrometheusServer {
 public:
  PrometheusServer(const std::string& workdir, const std::string& target_file,
                   double scrape_interval_s = 1.0, const std::vector<std::string>& extra_args = {})
      : workdir_(workdir), port_(free_loopback_port()) {
    config_path_ = workdir + "/prometheus.yml";
    log_path_ = workdir + "/prometheus.log";
    write_text_file(config_path_, prometheus_config_for(target_file, scrape_interval_s));
    std::vector<std::string> args = {kPrometheusBinary, "--config.file=" + config_path_,
                                     "--storage.tsdb.path=" + workdir + "/tsdb",
                                     "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                     "--log.level=info"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    // Everything the child needs is prepared before fork(): the test process has threads, so
    // the child may only make async-signal-safe calls before exec.
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error("cannot create " + log_path_);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(log_fd, 1);  // dup2 clears FD_CLOEXEC on the copies
      dup2(log_fd, 2);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(log_fd);
    if (pid_ < 0) throw std::runtime_error("fork failed");
  }

  ~PrometheusServer() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    if (!wait_for([&] { return waitpid(pid_, nullptr, WNOHANG) == pid_; }, 10.0, 0.05)) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  int port() const { return port_; }
  const std::string& config_path() const { return config_path_; }

  // True once /-/ready answers 200; false after timeout_s or if the process exited.
  bool wait_ready(double timeout_s) {
    return wait_for(
        [&] {
          if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("prometheus exited early:\n" + log_tail());
          }
          return http_get("127.0.0.1", port_, "/-/ready", 2.0).status == 200;
        },
        timeout_s);
  }

  // GET <api_path> and return the JSON reply's "data"; throws with the reply on any failure.
  nlohmann::json api(const std::string& api_path) const {
    const HttpResponse r = http_get("127.0.0.1", port_, api_path, 5.0);
    if (r.status != 200)
      throw std::runtime_error("GET " + api_path + " -> " + std::to_string(r.status) + " " +
                               r.error + r.body.substr(0, 300));
    const nlohmann::json j = nlohmann::json::parse(r.body);
    if (j.value("status", "") != "success")
      throw std::runtime_error("GET " + api_path + ": " + r.body.substr(0, 300));
    return j["data"];
  }

  // Instant query: the "result" array, one {"metric": {...}, "value": [t, "v"]} per series.
  nlohmann::json query(const std::string& promql) const {
    return api("/api/v1/query?query=" + url_encode(promql))["result"];
  }

  // Active targets (/api/v1/targets), for diagnostics and scrape-health checks.
  nlohmann::json active_targets() const { return api("/api/v1/targets")["activeTargets"]; }

  // The last ~4000 characters of the server's log (for failure messages).
  std::string log_tail() const {
    const std::string log = read_text_file(log_path_);
    return log.size() > 4000 ? log.substr(log.size() - 4000) : log;
  }

 private:
  std::string workdir_;
  std::string config_path_;
  std::string log_path_;
  int port_;
  pid_t pid_ = -1;
};

// {label value of `label` -> sample value} for an instant-query result.
inline std::map<std::string, double> values_by_label(const nlohmann::json& result,
                                                     const std::string& label) {
  std::map<std::string, double> out;
  for (const auto& series : result)
    out[series["metric"].value(label, "")] = std::stod(series["value"][1].get<std::string>());
  return out;
}

}  // namespace umbra::test
