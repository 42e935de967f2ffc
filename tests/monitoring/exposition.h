// Parser for the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), written from the spec, so tests
// read a scrape the way Prometheus does rather than through the code that wrote it.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace umbra::test {

struct ExpositionSample {
  std::string name;  // as written, e.g. umbra_step_duration_seconds_bucket
  std::map<std::string, std::string> labels;
  double value = 0.0;
};

struct Exposition {
  std::map<std::string, std::string> type;  // family name -> counter|gauge|histogram|...
  std::map<std::string, std::string> help;
  std::vector<ExpositionSample> samples;

  // The value of the one sample named `name` whose labels include `match`; nullopt when none, and
  // throws when several match (the caller's match was ambiguous).
  std::optional<double> value(const std::string& name,
                              const std::map<std::string, std::string>& match = {}) const {
    std::optional<double> found;
    for (const ExpositionSample& s : samples) {
      if (s.name != name) continue;
      bool all = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        all = all && it != s.labels.end() && it->second == v;
      }
      if (!all) continue;
      if (found) throw std::runtime_error("several samples of " + name + " match");
      found = s.value;
    }
    return found;
  }
};

inline double parse_exposition_value(const std::string& text) {
  if (text == "+Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return std::nan("");
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0')
    throw std::runtime_error("bad sample value '" + text + "'");
  return v;
}

inline Exposition parse_exposition(const std::string& text) {
  Exposition out;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    const std::string where = "line " + std::to_string(line_no) + ": ";
    if (line.empty()) continue;
    if (line[0] == '#') {
      // "# HELP name text" / "# TYPE name type"; other comments are ignored.
      if (line.compare(0, 7, "# HELP ") == 0 || line.compare(0, 7, "# TYPE ") == 0) {
        const size_t sp = line.find(' ', 7);
        if (sp == std::string::npos) throw std::runtime_error(where + "malformed " + line);
        const std::string name = line.substr(7, sp - 7);
        (line[2] == 'H' ? out.help : out.type)[name] = line.substr(sp + 1);
      }
      continue;
    }
    ExpositionSample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"')
          throw std::runtime_error(where + "malformed labels in " + line);
        const std::string key = line.substr(i, eq - i);
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) throw std::runtime_error(where + "unterminated label value");
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) throw std::runtime_error(where + "unterminated label set");
      ++i;
    }
    while (i < line.size() && line[i] == ' ') ++i;
    const size_t value_end = line.find(' ', i);  // an optional timestamp follows
    s.value = parse_exposition_value(
        line.substr(i, value_end == std::string::npos ? std::string::npos : value_end - i));
    out.samples.push_back(std::move(s));
  }
  return out;
}

}  // namespace umbra::test
