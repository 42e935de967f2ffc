#include "core/config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>

namespace umbra {
namespace {

std::string origin_of(const std::string& file, const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  if (m.line < 0) return file;
  return file + ":" + std::to_string(m.line + 1);
}

std::string show(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string last_component(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

[[noreturn]] void type_error(const std::string& key, const Config::Entry& e,
                             const std::string& expected) {
  UMBRA_FAIL("config key '", key, "' (", e.origin, "): expected ", expected, ", got ",
             show(e.value));
}

template <class T>
T scalar_as(const std::string& key, const Config::Entry& e, const std::string& expected) {
  if (!e.value.IsScalar()) type_error(key, e, expected);
  try {
    return e.value.as<T>();
  } catch (const YAML::Exception&) {
    type_error(key, e, expected);
  }
}

int64_t parse_int(const std::string& key, const Config::Entry& e) {
  if (!e.value.IsScalar()) type_error(key, e, "an integer");
  const std::string& s = e.value.Scalar();
  // Accept "1e6"-style integers (common in configs) when they are exact.
  size_t used = 0;
  try {
    const long long v = std::stoll(s, &used, 10);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  double d = 0;
  try {
    d = std::stod(s, &used);
  } catch (const std::exception&) {
    type_error(key, e, "an integer");
  }
  if (used != s.size() || !std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9.0e15) {
    type_error(key, e, "an integer");
  }
  return static_cast<int64_t>(d);
}

double parse_double(const std::string& key, const Config::Entry& e) {
  if (!e.value.IsScalar()) type_error(key, e, "a number");
  const std::string& s = e.value.Scalar();
  for (const char* inf : {"inf", ".inf", "+inf", "+.inf", "Infinity", ".Inf"}) {
    if (s == inf) return std::numeric_limits<double>::infinity();
  }
  for (const char* inf : {"-inf", "-.inf", "-Infinity", "-.Inf"}) {
    if (s == inf) return -std::numeric_limits<double>::infinity();
  }
  // strtod, not stod: subnormal values are numbers too.
  char* end = nullptr;
  const double d = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || std::isnan(d)) type_error(key, e, "a number");
  return d;
}

template <class T, class F>
void parse_list(const std::string& key, const Config::Entry& e, std::vector<T>& out,
                const std::string& expected, F parse_one) {
  if (!e.value.IsSequence()) type_error(key, e, expected);
  std::vector<T> result;
  for (const auto& item : e.value) {
    result.push_back(parse_one(key, Config::Entry{item, e.origin}));
  }
  out = std::move(result);
}

std::string format_double(double v) {
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  std::ostringstream out;
  out.precision(17);
  out << v;
  std::string s = out.str();
  // Prefer the shortest text that reads back to the same double.
  for (int p = 1; p < 17; ++p) {
    std::ostringstream t;
    t.precision(p);
    t << v;
    if (std::strtod(t.str().c_str(), nullptr) == v) {
      s = t.str();
      break;
    }
  }
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

// Configs are UTF-8 text; other bytes would not survive the resolved config written to the run.
void check_utf8(const std::string& text, const std::string& origin) {
  size_t i = 0, line = 1;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= text.size() && !(len == 2 && c < 0xC2);
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(text[i + k]) >> 6) == 2;
    }
    UMBRA_CHECK(ok, origin, ":", line, ": not valid UTF-8 text (byte 0x", std::hex,
                static_cast<int>(c), ")");
    if (c == '\n') ++line;
    i += len;
  }
}

}  // namespace

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  UMBRA_CHECK(in.good(), path, ": cannot open config file");
  std::ostringstream text;
  text << in.rdbuf();
  return from_string(text.str(), path, overrides);
}

Config Config::from_string(const std::string& yaml, const std::string& origin,
                           const std::vector<std::string>& overrides) {
  check_utf8(yaml, origin);
  Config cfg;
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    UMBRA_FAIL(origin, ":", e.mark.line + 1, ": invalid YAML: ", e.msg);
  }
  if (root.IsDefined() && !root.IsNull()) {
    UMBRA_CHECK(root.IsMap(), origin, ": expected a mapping of config keys at the top level");
    cfg.add_tree(root, "", origin);
  }
  for (const auto& o : overrides) cfg.apply_override(o);
  return cfg;
}

void Config::add_tree(const YAML::Node& node, const std::string& prefix, const std::string& file) {
  for (const auto& kv : node) {
    UMBRA_CHECK(kv.first.IsScalar(), origin_of(file, kv.first),
                ": config keys must be plain names");
    const std::string key = prefix + kv.first.Scalar();
    if (kv.second.IsMap()) {
      add_tree(kv.second, key + ".", file);
    } else {
      entries_[key] = Entry{kv.second, origin_of(file, kv.second)};
    }
  }
}

void Config::apply_override(const std::string& assignment) {
  const auto eq = assignment.find('=');
  UMBRA_USAGE_CHECK(eq != std::string::npos && eq > 0, "override '", assignment,
                    "': expected key.sub=value");
  check_utf8(assignment, "override '" + assignment + "'");
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    UMBRA_FAIL("override '", assignment, "': value is not valid YAML: ", e.msg);
  }
  if (!value.IsDefined() || value.IsNull()) value = YAML::Node(text);
  if (value.IsMap()) {
    Config sub;
    sub.add_tree(value, key + ".", "command line");
    for (auto& kv : sub.entries_) entries_[kv.first] = kv.second;
    return;
  }
  entries_[key] = Entry{value, "command line"};
}

const Config::Entry* Config::find(const std::string& key) const {
  const auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

void Config::finish() const {
  for (const auto& kv : entries_) {
    if (known_.count(kv.first)) continue;
    const std::string near = nearest_key(kv.first, known_);
    UMBRA_FAIL("config key '", kv.first, "' (", kv.second.origin, ") is not a known key",
               near.empty() ? std::string() : "; did you mean '" + near + "'?");
  }
}

std::string nearest_key(const std::string& key, const std::set<std::string>& known) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& k : known) {
    size_t d = edit_distance(key, k);
    // The right leaf under the wrong section ("data.seed" for "run.seed") is a near miss too.
    if (last_component(k) == last_component(key)) d = std::min<size_t>(d, 2);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  const size_t budget = std::max<size_t>(2, key.size() / 3);
  return best_d <= budget ? best : std::string();
}

namespace detail {

std::string describe_type(bool*) { return "bool"; }
std::string describe_type(int*) { return "int"; }
std::string describe_type(int64_t*) { return "int"; }
std::string describe_type(double*) { return "float"; }
std::string describe_type(std::string*) { return "string"; }
std::string describe_type(std::vector<std::string>*) { return "list of strings"; }
std::string describe_type(std::vector<double>*) { return "list of floats"; }
std::string describe_type(std::vector<int64_t>*) { return "list of ints"; }

void parse_value(const std::string& key, const Config::Entry& e, bool& out) {
  out = scalar_as<bool>(key, e, "true or false");
}
void parse_value(const std::string& key, const Config::Entry& e, int& out) {
  const int64_t v = parse_int(key, e);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    type_error(key, e, "an integer that fits in 32 bits");
  }
  out = static_cast<int>(v);
}
void parse_value(const std::string& key, const Config::Entry& e, int64_t& out) {
  out = parse_int(key, e);
}
void parse_value(const std::string& key, const Config::Entry& e, double& out) {
  out = parse_double(key, e);
}
void parse_value(const std::string& key, const Config::Entry& e, std::string& out) {
  out = scalar_as<std::string>(key, e, "a string");
}
void parse_value(const std::string& key, const Config::Entry& e, std::vector<std::string>& out) {
  parse_list(key, e, out, "a list of strings", [](const std::string& k, const Config::Entry& x) {
    return scalar_as<std::string>(k, x, "a list of strings");
  });
}
void parse_value(const std::string& key, const Config::Entry& e, std::vector<double>& out) {
  parse_list(key, e, out, "a list of numbers", parse_double);
}
void parse_value(const std::string& key, const Config::Entry& e, std::vector<int64_t>& out) {
  parse_list(key, e, out, "a list of integers", parse_int);
}

std::string to_yaml_scalar(const bool& v) { return v ? "true" : "false"; }
std::string to_yaml_scalar(const int& v) { return std::to_string(v); }
std::string to_yaml_scalar(const int64_t& v) { return std::to_string(v); }
std::string to_yaml_scalar(const double& v) { return format_double(v); }
std::string to_yaml_scalar(const std::string& v) {
  YAML::Emitter out;
  out << YAML::DoubleQuoted << v;
  return out.c_str();
}
template <class T>
std::string list_to_yaml(const std::vector<T>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + to_yaml_scalar(v[i]);
  return s + "]";
}
std::string to_yaml_scalar(const std::vector<std::string>& v) { return list_to_yaml(v); }
std::string to_yaml_scalar(const std::vector<double>& v) { return list_to_yaml(v); }
std::string to_yaml_scalar(const std::vector<int64_t>& v) { return list_to_yaml(v); }

void check_constraint(const std::string& key, double value, const AtLeast& c) {
  UMBRA_CHECK(value >= c.min, "config key '", key, "': expected a value >= ", c.min, ", got ",
              value);
}
void check_constraint(const std::string& key, double value, const InRange& c) {
  UMBRA_CHECK(value >= c.min && value <= c.max, "config key '", key, "': expected a value in [",
              c.min, ", ", c.max, "], got ", value);
}
void check_constraint(const std::string& key, const std::string& value, const OneOf& c) {
  if (std::find(c.choices.begin(), c.choices.end(), value) != c.choices.end()) return;
  UMBRA_FAIL("config key '", key, "': expected one of ", describe_constraint(c), ", got '", value,
             "'");
}
std::string describe_constraint(const AtLeast& c) {
  std::ostringstream out;
  out << "(>= " << c.min << ")";
  return out.str();
}
std::string describe_constraint(const InRange& c) {
  std::ostringstream out;
  out << "(in [" << c.min << ", " << c.max << "])";
  return out.str();
}
std::string describe_constraint(const OneOf& c) {
  std::string s;
  for (size_t i = 0; i < c.choices.size(); ++i) s += (i ? "|" : "") + c.choices[i];
  return "(" + s + ")";
}

}  // namespace detail
}  // namespace umbra
