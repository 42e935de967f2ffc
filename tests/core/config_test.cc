#include "core/config.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/run_options.h"

namespace umbra {
namespace {

struct Inner {
  double rate = 0.5;
  std::vector<int64_t> mult{1, 2};
  template <class V>
  void visit(V& v) {
    v("rate", rate, "A rate", InRange{0.0, 1.0});
    v("mult", mult, "Multipliers");
  }
};

struct Opts {
  RunOptions run;
  std::string stage = "autoencoder";
  bool enabled = false;
  int count = 3;
  Inner inner;
  template <class V>
  void visit(V& v) {
    v.section("run", run);
    v("stage", stage, "Which stage", OneOf{"autoencoder", "prior", "both"});
    v("enabled", enabled, "On or off");
    v("count", count, "How many", AtLeast{1});
    v.section("inner", inner);
  }
};

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    Config cfg = Config::from_string(yaml, "test.yaml", overrides);
    Opts o;
    bind_options(cfg, o);
    cfg.finish();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ParsesNestedKeysAndOverrides) {
  Config cfg = Config::from_string("run:\n  name: a\n  seed: 7\ninner:\n  rate: 0.25\n", "t.yaml",
                                   {"run.seed=9", "enabled=true", "inner.mult=[4, 8]"});
  Opts o;
  bind_options(cfg, o);
  cfg.finish();
  EXPECT_EQ(o.run.name, "a");
  EXPECT_EQ(o.run.seed, 9);
  EXPECT_TRUE(o.enabled);
  EXPECT_DOUBLE_EQ(o.inner.rate, 0.25);
  EXPECT_EQ(o.inner.mult, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(o.count, 3);  // default kept
}

TEST(Config, AcceptsExactScientificIntegers) {
  Config cfg = Config::from_string("count: 1e3\n", "t.yaml");
  Opts o;
  bind_options(cfg, o);
  EXPECT_EQ(o.count, 1000);
}

TEST(Config, UnknownKeySuggestsNearest) {
  const std::string e = error_of("run:\n  nmae: x\n");
  EXPECT_NE(e.find("'run.nmae'"), std::string::npos) << e;
  EXPECT_NE(e.find("test.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'run.name'"), std::string::npos) << e;
}

TEST(Config, UnknownOverrideSuggestsLeafInOtherSection) {
  const std::string e = error_of("", {"inner.seed=3"});
  EXPECT_NE(e.find("command line"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'run.seed'"), std::string::npos) << e;
}

TEST(Config, WrongTypesNameKeyOriginValueAndExpectation) {
  std::string e = error_of("count: abc\n");
  EXPECT_NE(e.find("'count' (test.yaml:1): expected an integer, got 'abc'"), std::string::npos)
      << e;
  e = error_of("count: 2.5\n");
  EXPECT_NE(e.find("expected an integer"), std::string::npos) << e;
  e = error_of("enabled: maybe\n");
  EXPECT_NE(e.find("expected true or false"), std::string::npos) << e;
  e = error_of("inner:\n  rate: [1]\n");
  EXPECT_NE(e.find("expected a number"), std::string::npos) << e;
  e = error_of("inner:\n  mult: 3\n");
  EXPECT_NE(e.find("expected a list of integers"), std::string::npos) << e;
}

TEST(Config, ConstraintsAreChecked) {
  EXPECT_NE(error_of("count: 0\n").find("expected a value >= 1"), std::string::npos);
  EXPECT_NE(error_of("inner:\n  rate: 2\n").find("in [0, 1]"), std::string::npos);
  EXPECT_NE(error_of("stage: prior2\n").find("one of (autoencoder|prior|both)"), std::string::npos);
}

TEST(Config, InvalidYamlNamesFileAndLine) {
  const std::string e = error_of("run:\n  name: [unclosed\n");
  EXPECT_NE(e.find("test.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST(Config, BadOverrideIsUsageError) {
  EXPECT_THROW(Config::from_string("", "t", {"novalue"}), UsageError);
}

TEST(Config, ResolvedYamlReadsBackToTheSameOptions) {
  Opts o;
  o.run.name = "quote\"d: name";
  o.inner.rate = 0.1;
  o.inner.mult = {3, 5, 7};
  o.enabled = true;
  const std::string yaml = options_to_yaml(o);
  Config cfg = Config::from_string(yaml, "resolved.yaml");
  Opts back;
  bind_options(cfg, back);
  cfg.finish();
  EXPECT_EQ(back.run.name, o.run.name);
  EXPECT_EQ(back.inner.rate, o.inner.rate);
  EXPECT_EQ(back.inner.mult, o.inner.mult);
  EXPECT_EQ(back.enabled, true);
  EXPECT_EQ(options_to_yaml(back), yaml);
}

TEST(Config, MarkdownListsEveryKeyOnce) {
  const std::string md = options_to_markdown(Opts{});
  for (const char* key : {"`run.name`", "`run.seed`", "`stage`", "`inner.rate`", "`inner.mult`"}) {
    EXPECT_NE(md.find(key), std::string::npos) << key;
  }
  EXPECT_NE(md.find("(autoencoder|prior|both)"), std::string::npos);
}

}  // namespace
}  // namespace umbra

namespace umbra {
namespace {

struct Num {
  double x = 0;
  template <class V>
  void visit(V& v) {
    v("x", x, "A number");
  }
};

TEST(Config, InfinitiesAndSubnormalsRoundTrip) {
  for (const double value : {-std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::infinity(), 1e-310}) {
    Num n;
    n.x = value;
    Config cfg = Config::from_string(options_to_yaml(n), "resolved.yaml");
    Num back;
    bind_options(cfg, back);
    EXPECT_EQ(back.x, value);
  }
}

TEST(Config, InvalidUtf8IsRejectedWithTheLine) {
  try {
    Config::from_string("x: 1\nname: \"caf\xe9\"\n", "bad.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.yaml:2: not valid UTF-8"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace umbra
