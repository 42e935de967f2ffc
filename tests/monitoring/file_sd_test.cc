// file_sd target files: the JSON shape of the Prometheus docs, and promtool's own service
// discovery reading the file through the shipped prometheus.yml.
#include "monitoring/file_sd.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "tests/monitoring/prometheus_server.h"

namespace umbra {
namespace {

std::vector<ScrapeTarget> three_ranks() {
  return {{"127.0.0.1:9400", {{"run", "fmnist"}, {"rank", "0"}}},
          {"", {{"run", "fmnist"}, {"rank", "1"}}},  // rank 1 could not bind its port
          {"node7:9401", {{"run", "fmnist"}, {"rank", "2"}}}};
}

TEST(FileSd, WritesOneTargetGroupPerServingRank) {
  test::TempDir dir;
  const std::string path = file_sd_path(dir.path() + "/runs", "fmnist");
  EXPECT_EQ(path, dir.path() + "/runs/prometheus_targets/fmnist.json");
  write_file_sd(path, three_ranks());
  const nlohmann::json j = nlohmann::json::parse(test::read_text_file(path));
  const nlohmann::json expected = nlohmann::json::parse(R"([
    {"targets": ["127.0.0.1:9400"], "labels": {"run": "fmnist", "rank": "0"}},
    {"targets": ["node7:9401"], "labels": {"run": "fmnist", "rank": "2"}}])");
  EXPECT_EQ(j, expected);
  // Nothing but the target file is left behind (the temporary file was renamed).
  int entries = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(dir.path() + "/runs/prometheus_targets")) {
    EXPECT_EQ(e.path().filename(), "fmnist.json");
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST(FileSd, RewriteReplacesTheWholeFile) {
  test::TempDir dir;
  const std::string path = dir.path() + "/targets.json";
  write_file_sd(path, three_ranks());
  write_file_sd(path, {{"127.0.0.1:9500", {{"rank", "0"}}}});
  const nlohmann::json j = nlohmann::json::parse(test::read_text_file(path));
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["targets"][0], "127.0.0.1:9500");
  write_file_sd(path, {});
  EXPECT_EQ(nlohmann::json::parse(test::read_text_file(path)), nlohmann::json::array());
}

TEST(FileSd, ErrorsNameThePathOrLabel) {
  test::TempDir dir;
  test::write_text_file(dir.path() + "/file", "x");
  try {
    write_file_sd(dir.path() + "/file/targets.json", three_ranks());  // parent is a file
    FAIL() << "expected umbra::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path() + "/file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(write_file_sd(dir.path() + "/t.json", {{"h:1", {{"bad-label", "x"}}}}), Error);
  EXPECT_THROW(write_file_sd(dir.path() + "/t.json", {{"h:1", {{"__address__", "x"}}}}), Error);
}

TEST(FileSd, PromtoolDiscoversTheTargetsThroughTheShippedConfig) {
  if (!test::executable_exists(test::kPromtoolBinary))
    GTEST_SKIP() << test::kPromtoolBinary << " not installed (Debian package prometheus)";
  test::TempDir dir;
  const std::string targets = dir.path() + "/targets.json";
  write_file_sd(targets, three_ranks());
  const std::string config = dir.path() + "/prometheus.yml";
  test::write_text_file(config, test::prometheus_config_for(targets, 1.0));
  const std::string promtool = test::kPromtoolBinary;

  const test::CommandResult check = test::run_command(promtool + " check config " + config);
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output.find("WARNING"), std::string::npos) << check.output;

  // promtool logs to stderr; the discovered targets are the JSON on stdout.
  const test::CommandResult sd = test::run_command(
      "(" + promtool + " check service-discovery --timeout=2s " + config + " umbra 2>/dev/null)");
  ASSERT_EQ(sd.exit_code, 0) << sd.output;
  const nlohmann::json found = nlohmann::json::parse(sd.output);
  std::map<std::string, std::string> rank_by_instance;
  for (const auto& t : found) {
    EXPECT_EQ(t["labels"]["job"], "umbra");
    EXPECT_EQ(t["labels"]["run"], "fmnist");
    rank_by_instance[t["labels"]["instance"]] = t["labels"]["rank"];
  }
  EXPECT_EQ(rank_by_instance,
            (std::map<std::string, std::string>{{"127.0.0.1:9400", "0"}, {"node7:9401", "2"}}));
}

}  // namespace
}  // namespace umbra
