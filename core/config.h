// Configuration: a YAML file flattened to dotted keys ("privacy.noise_multiplier"), with
// command-line overrides "key.sub=value" (values parsed as YAML) applied on top.
//
// Options structs (core/options.h) are bound with bind_options(); every key the file or the
// overrides mention must be consumed by some options struct, otherwise finish() throws an
// umbra::Error naming the key, where it came from, and the nearest known key.
//
//   Config cfg = Config::load("configs/quickstart.yaml", {"run.seed=3"});
//   MyOptions opts;
//   bind_options(cfg, opts);   // type errors name key, origin, value and the expected type
//   cfg.finish();              // unknown keys -> "did you mean ..."
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/check.h"
#include "core/options.h"

namespace umbra {

class Config {
 public:
  struct Entry {
    YAML::Node value;    // a scalar or a sequence
    std::string origin;  // "configs/x.yaml:12" or "command line"
  };

  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  static Config from_string(const std::string& yaml, const std::string& origin,
                            const std::vector<std::string>& overrides = {});

  // "a.b=value"; the value is parsed as YAML ("3", "true", "[1, 2]", "abc").
  void apply_override(const std::string& assignment);

  bool has(const std::string& key) const { return entries_.count(key) != 0; }
  const Entry* find(const std::string& key) const;

  // Called by bind_options for every declared key (present or not).
  void declare(const std::string& key) { known_.insert(key); }

  // Throws for the first key that no options struct declared, suggesting the nearest.
  void finish() const;

  const std::map<std::string, Entry>& entries() const { return entries_; }
  const std::set<std::string>& known_keys() const { return known_; }

 private:
  void add_tree(const YAML::Node& node, const std::string& prefix, const std::string& file);
  std::map<std::string, Entry> entries_;
  std::set<std::string> known_;
};

// Nearest key by edit distance (for "did you mean"); empty when nothing is close.
std::string nearest_key(const std::string& key, const std::set<std::string>& known);

namespace detail {

std::string describe_type(bool*);
std::string describe_type(int*);
std::string describe_type(int64_t*);
std::string describe_type(double*);
std::string describe_type(std::string*);
std::string describe_type(std::vector<std::string>*);
std::string describe_type(std::vector<double>*);
std::string describe_type(std::vector<int64_t>*);

// Parse entry into value or throw an Error naming key/origin/value/expected type.
void parse_value(const std::string& key, const Config::Entry& e, bool& out);
void parse_value(const std::string& key, const Config::Entry& e, int& out);
void parse_value(const std::string& key, const Config::Entry& e, int64_t& out);
void parse_value(const std::string& key, const Config::Entry& e, double& out);
void parse_value(const std::string& key, const Config::Entry& e, std::string& out);
void parse_value(const std::string& key, const Config::Entry& e, std::vector<std::string>& out);
void parse_value(const std::string& key, const Config::Entry& e, std::vector<double>& out);
void parse_value(const std::string& key, const Config::Entry& e, std::vector<int64_t>& out);

std::string to_yaml_scalar(const bool& v);
std::string to_yaml_scalar(const int& v);
std::string to_yaml_scalar(const int64_t& v);
std::string to_yaml_scalar(const double& v);
std::string to_yaml_scalar(const std::string& v);
std::string to_yaml_scalar(const std::vector<std::string>& v);
std::string to_yaml_scalar(const std::vector<double>& v);
std::string to_yaml_scalar(const std::vector<int64_t>& v);

void check_constraint(const std::string& key, double value, const AtLeast& c);
void check_constraint(const std::string& key, double value, const InRange& c);
void check_constraint(const std::string& key, const std::string& value, const OneOf& c);
std::string describe_constraint(const AtLeast& c);
std::string describe_constraint(const InRange& c);
std::string describe_constraint(const OneOf& c);

template <class T, class C>
void check_any(const std::string& key, const T& value, const C& c) {
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<C, OneOf>) {
    check_constraint(key, static_cast<double>(value), c);
  } else if constexpr (std::is_same_v<T, std::string> && std::is_same_v<C, OneOf>) {
    check_constraint(key, value, c);
  } else {
    static_assert(sizeof(T) == 0, "constraint does not apply to this option type");
  }
}

// Visitor that reads a Config into options structs.
class BindVisitor {
 public:
  explicit BindVisitor(Config& cfg, std::string prefix = "")
      : cfg_(cfg), prefix_(std::move(prefix)) {}
  template <class T, class... C>
  void operator()(const char* name, T& value, const char* /*help*/, const C&... constraints) {
    const std::string key = prefix_ + name;
    cfg_.declare(key);
    if (const Config::Entry* e = cfg_.find(key)) parse_value(key, *e, value);
    (check_any(key, value, constraints), ...);
  }
  template <class S>
  void section(const char* name, S& sub) {
    BindVisitor inner(cfg_, prefix_ + name + ".");
    sub.visit(inner);
  }

 private:
  Config& cfg_;
  std::string prefix_;
};

// Visitor that writes resolved values as nested YAML.
class YamlVisitor {
 public:
  explicit YamlVisitor(std::ostringstream& out, int indent = 0) : out_(out), indent_(indent) {}
  template <class T, class... C>
  void operator()(const char* name, T& value, const char* /*help*/, const C&...) {
    out_ << std::string(indent_, ' ') << name << ": " << to_yaml_scalar(value) << "\n";
  }
  template <class S>
  void section(const char* name, S& sub) {
    out_ << std::string(indent_, ' ') << name << ":\n";
    YamlVisitor inner(out_, indent_ + 2);
    sub.visit(inner);
  }

 private:
  std::ostringstream& out_;
  int indent_;
};

// Visitor that writes one markdown table row per key (configs/README.md).
class DocVisitor {
 public:
  explicit DocVisitor(std::ostringstream& out, std::string prefix = "")
      : out_(out), prefix_(std::move(prefix)) {}
  template <class T, class... C>
  void operator()(const char* name, T& value, const char* help, const C&... constraints) {
    std::string extra;
    ((extra += " " + describe_constraint(constraints)), ...);
    out_ << "| `" << prefix_ << name << "` | " << describe_type(static_cast<T*>(nullptr)) << " | `"
         << to_yaml_scalar(value) << "` | " << help << extra << " |\n";
  }
  template <class S>
  void section(const char* name, S& sub) {
    DocVisitor inner(out_, prefix_ + name + ".");
    sub.visit(inner);
  }

 private:
  std::ostringstream& out_;
  std::string prefix_;
};

}  // namespace detail

template <class Options>
void bind_options(Config& cfg, Options& opts) {
  detail::BindVisitor v(cfg);
  opts.visit(v);
}

template <class Options>
std::string options_to_yaml(Options opts) {
  std::ostringstream out;
  detail::YamlVisitor v(out);
  opts.visit(v);
  return out.str();
}

template <class Options>
std::string options_to_markdown(Options opts) {
  std::ostringstream out;
  out << "| key | type | default | meaning |\n|---|---|---|---|\n";
  detail::DocVisitor v(out);
  opts.visit(v);
  return out.str();
}

}  // namespace umbra
