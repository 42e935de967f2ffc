#include "monitoring/run_report.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <vector>

#include "core/check.h"
#include "monitoring/atomic_file.h"
#include "monitoring/jsonl_log.h"
#include "monitoring/svg_chart.h"

namespace fs = std::filesystem;

namespace umbra {

namespace {

struct StageCurves {
  std::string stage;
  std::vector<double> step, loss, images_per_s, epsilon;  // epsilon: NaN where not logged
  bool has_epsilon = false;
  double last_time = 0.0;
};

// Stages in the order the log first mentions them (autoencoder before prior).
std::vector<StageCurves> curves_by_stage(const std::vector<StepRecord>& records) {
  std::vector<StageCurves> stages;
  std::map<std::string, size_t> index;
  for (const StepRecord& r : records) {
    auto [it, added] = index.emplace(r.stage, stages.size());
    if (added) stages.push_back(StageCurves{r.stage, {}, {}, {}, {}, false, 0.0});
    StageCurves& c = stages[it->second];
    c.step.push_back(static_cast<double>(r.step));
    c.loss.push_back(r.loss);
    c.images_per_s.push_back(r.images_per_s);
    c.epsilon.push_back(r.epsilon ? *r.epsilon : std::nan(""));
    c.has_epsilon = c.has_epsilon || r.epsilon.has_value();
    c.last_time = std::max(c.last_time, r.time);
  }
  return stages;
}

struct Grid {
  std::string stage;
  int64_t step = -1;
  std::string relative_path;  // from the run directory, e.g. samples/prior_step_400.png
  int width = 0, height = 0;  // from the PNG header; 0 when unreadable
};

// Width and height from a PNG's IHDR chunk, without decoding it.
std::pair<int, int> png_size(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char b[24] = {};
  if (!in.read(reinterpret_cast<char*>(b), sizeof(b))) return {0, 0};
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!std::equal(kSignature, kSignature + 8, b) || std::string(b + 12, b + 16) != "IHDR")
    return {0, 0};
  auto be32 = [&](int at) {
    return static_cast<int>((uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) |
                            (uint32_t(b[at + 2]) << 8) | uint32_t(b[at + 3]));
  };
  return {be32(16), be32(20)};
}

// The newest samples/<stage>_step_<n>.png of each stage (highest n), in stage-name order.
std::vector<Grid> newest_grids(const std::string& run_dir) {
  std::map<std::string, Grid> newest;
  const fs::path dir = fs::path(run_dir) / "samples";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  static const std::regex kName(R"(^(.+)_step_([0-9]{1,18})\.png$)");
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, kName) || !e.is_regular_file(ec)) continue;
    const int64_t step = std::stoll(m[2].str());
    Grid& g = newest[m[1].str()];
    if (step > g.step) g = Grid{m[1].str(), step, "samples/" + name, 0, 0};
  }
  std::vector<Grid> grids;
  for (auto& [stage, g] : newest) {
    std::tie(g.width, g.height) = png_size(dir / fs::path(g.relative_path).filename());
    grids.push_back(g);
  }
  return grids;
}

std::string grid_caption(const std::string& stage) {
  if (stage == "autoencoder")
    return "Held-out originals (top row) over their reconstructions (bottom row), EMA weights";
  if (stage == "prior")
    return "Samples from the prior, decoded by the autoencoder (EMA weights; one row per class "
           "for a class-conditional prior)";
  return "Newest grid of stage " + stage;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  UMBRA_CHECK(in.good(), "'", path.string(), "': cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string utc_time(double unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string number(double v, int precision = 4) {
  if (!std::isfinite(v)) return "&ndash;";
  std::ostringstream out;
  out.precision(precision);
  out << v;
  return out.str();
}

double last_finite(const std::vector<double>& v) {
  for (auto it = v.rbegin(); it != v.rend(); ++it)
    if (std::isfinite(*it)) return *it;
  return std::nan("");
}

// What the page needs from config.yaml: the run's name and, for a private run, the target epsilon.
// A file that does not parse is still shown verbatim; only these figures are left out.
struct ConfigFacts {
  std::string run_name;
  std::optional<double> target_epsilon;
};

ConfigFacts config_facts(const std::string& yaml_text) {
  ConfigFacts facts;
  try {
    const YAML::Node root = YAML::Load(yaml_text);
    if (root["run"] && root["run"]["name"]) facts.run_name = root["run"]["name"].as<std::string>();
    const YAML::Node privacy = root["privacy"];
    if (privacy && privacy["enabled"] && privacy["enabled"].as<bool>() &&
        privacy["target_epsilon"]) {
      const double target = privacy["target_epsilon"].as<double>();
      if (std::isfinite(target) && target > 0) facts.target_epsilon = target;
    }
  } catch (const YAML::Exception&) {
  }
  return facts;
}

constexpr const char* kStyle = R"(<style>
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1360px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; }
.meta { color: #666; font-size: 13px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0 16px 16px 0; vertical-align: top; }
figure img { image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #444; max-width: 640px; }
pre { background: #f6f6f6; padding: 12px; font-size: 12px; overflow-x: auto; }
.missing { color: #a00; }
</style>
)";

}  // namespace

std::string run_report_path(const std::string& run_dir) { return run_dir + "/report.html"; }

std::string run_report_html(const std::string& run_dir) {
  std::error_code ec;
  UMBRA_CHECK(fs::is_directory(run_dir, ec), "report: run directory '", run_dir,
              "' does not exist or is not a directory");
  const fs::path dir(run_dir);

  std::vector<StepRecord> records;
  const bool have_log = fs::exists(jsonl_log_path(run_dir), ec);
  if (have_log) records = read_jsonl_log(jsonl_log_path(run_dir));
  const std::vector<StageCurves> stages = curves_by_stage(records);

  std::string config_text;
  const bool have_config = fs::is_regular_file(dir / "config.yaml", ec);
  if (have_config) config_text = read_file(dir / "config.yaml");
  const ConfigFacts facts = config_facts(config_text);
  const std::string name = facts.run_name.empty()
                               ? fs::path(run_dir).lexically_normal().filename().string()
                               : facts.run_name;

  std::ostringstream page;
  page << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       << "<title>Umbra run " << html_escape(name) << "</title>\n"
       << kStyle << "</head>\n<body>\n<h1>Umbra run " << html_escape(name) << "</h1>\n"
       << "<div class=\"meta\">" << html_escape(fs::absolute(dir, ec).lexically_normal().string())
       << " &middot; report written " << utc_time(static_cast<double>(std::time(nullptr)));
  double last_time = 0;
  for (const StageCurves& c : stages) last_time = std::max(last_time, c.last_time);
  if (last_time > 0) page << " &middot; last metric logged " << utc_time(last_time);
  page << " &middot; <a href=\"metrics.jsonl\">metrics.jsonl</a> &middot; "
       << "<a href=\"config.yaml\">config.yaml</a></div>\n";

  // Summary table.
  page << "<h2>Progress</h2>\n";
  if (stages.empty()) {
    page << "<p class=\"missing\">"
         << (have_log ? "metrics.jsonl holds no records yet."
                      : "No metrics.jsonl yet (nothing logged, or monitoring.jsonl is false).")
         << "</p>\n";
  } else {
    page << "<table>\n<tr><th>stage</th><th>last step</th><th>loss</th><th>lowest loss</th>"
         << "<th>images/s</th><th>&epsilon; spent</th><th>records</th></tr>\n";
    for (const StageCurves& c : stages) {
      double lowest = std::nan("");
      for (double v : c.loss)
        if (std::isfinite(v) && !(lowest <= v)) lowest = v;
      page << "<tr><td>" << html_escape(c.stage) << "</td><td>"
           << static_cast<int64_t>(c.step.back()) << "</td><td>" << number(c.loss.back())
           << "</td><td>" << number(lowest) << "</td><td>" << number(last_finite(c.images_per_s))
           << "</td><td>" << (c.has_epsilon ? number(last_finite(c.epsilon)) : "not private")
           << "</td><td>" << c.step.size() << "</td></tr>\n";
    }
    page << "</table>\n";
  }

  // Charts.
  if (!stages.empty()) {
    page << "<h2>Loss</h2>\n<div class=\"charts\">\n";
    for (const StageCurves& c : stages) {
      ChartOptions o;
      o.title = "Training loss: " + c.stage;
      o.x_label = "step";
      o.x_integer = true;
      o.y_label = "loss";
      page << svg_line_chart({ChartSeries{c.stage, c.step, c.loss}}, o);
    }
    page << "</div>\n";

    std::vector<ChartSeries> epsilon;
    for (const StageCurves& c : stages)
      if (c.has_epsilon) epsilon.push_back({c.stage, c.step, c.epsilon});
    if (!epsilon.empty() || facts.target_epsilon) {
      ChartOptions o;
      o.title = "Privacy spent (\xce\xb5)";
      o.x_label = "step";
      o.x_integer = true;
      o.y_label = "\xce\xb5";
      o.y_from_zero = true;
      o.y_reference = facts.target_epsilon;
      o.y_reference_label = "target";
      page << "<h2>Privacy</h2>\n<div class=\"charts\">\n"
           << svg_line_chart(epsilon, o) << "</div>\n";
    }

    std::vector<ChartSeries> throughput;
    for (const StageCurves& c : stages) throughput.push_back({c.stage, c.step, c.images_per_s});
    ChartOptions o;
    o.title = "Throughput (all ranks)";
    o.x_label = "step";
    o.x_integer = true;
    o.y_label = "images/s";
    o.y_from_zero = true;
    page << "<h2>Throughput</h2>\n<div class=\"charts\">\n"
         << svg_line_chart(throughput, o) << "</div>\n";
  }

  // Newest sample and reconstruction grids.
  page << "<h2>Samples</h2>\n";
  const std::vector<Grid> grids = newest_grids(run_dir);
  if (grids.empty()) page << "<p class=\"missing\">No sample grid yet (samples/*.png).</p>\n";
  for (const Grid& g : grids) {
    // Small grids (28x28 tiles) are scaled up by a whole factor so pixels stay sharp.
    const int scale = g.width > 0 ? std::max(1, std::min(4, 640 / g.width)) : 1;
    page << "<figure><img src=\"" << html_escape(g.relative_path) << "\" alt=\""
         << html_escape(g.stage) << " grid at step " << g.step << "\"";
    if (g.width > 0)
      page << " width=\"" << g.width * scale << "\" height=\"" << g.height * scale << "\"";
    page << "><figcaption><b>" << html_escape(g.stage) << ", step " << g.step << "</b> ("
         << html_escape(g.relative_path) << "): " << html_escape(grid_caption(g.stage))
         << "</figcaption></figure>\n";
  }

  page << "<h2>Configuration</h2>\n";
  if (have_config)
    page << "<pre>" << html_escape(config_text) << "</pre>\n";
  else
    page << "<p class=\"missing\">No config.yaml in the run directory.</p>\n";
  page << "</body>\n</html>\n";
  return page.str();
}

void write_run_report(const std::string& run_dir) {
  const std::string html = run_report_html(run_dir);
  write_file_atomically(run_report_path(run_dir), html, "run report");
}

}  // namespace umbra
