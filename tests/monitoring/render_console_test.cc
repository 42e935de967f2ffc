// monitoring/render_console.sh end to end: two live exporters, the script's own Prometheus and
// headless Chromium; the result is a real PNG of the console page. The picture is kept as
// umbra_console.png in the test's working directory (build/tests) for people to look at.
#include <gtest/gtest.h>

#include "monitoring/file_sd.h"
#include "tests/monitoring/prometheus_server.h"
#include "tests/monitoring/simulated_rank.h"

namespace umbra {
namespace {

uint32_t big_endian_u32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint32_t(uint8_t(s[at + 3]));
}

TEST(RenderConsole, ScreenshotsTheConsolePage) {
  if (!test::executable_exists(test::kPrometheusBinary))
    GTEST_SKIP() << test::kPrometheusBinary << " not installed (Debian package prometheus)";
  if (test::run_command("command -v chromium chromium-browser google-chrome").output.empty())
    GTEST_SKIP() << "no Chromium installed (Debian package chromium)";
  MonitoringOptions options;
  options.port_base = 0;
  test::SimulatedRank rank0(0, options);
  test::SimulatedRank rank1(1, options);
  ASSERT_TRUE(rank0.exporter().serving() && rank1.exporter().serving());
  test::TempDir dir;
  const std::string targets = dir.path() + "/targets.json";
  write_file_sd(targets, {rank0.target("render"), rank1.target("render")});

  const std::string png = "umbra_console.png";
  const test::CommandResult r =
      test::run_command(std::string(UMBRA_SOURCE_DIR) + "/monitoring/render_console.sh " +
                        test::shell_quote(targets) + " " + png + " 15 render");
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const std::string bytes = test::read_text_file(png);
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(bytes.substr(12, 4), "IHDR");
  EXPECT_EQ(big_endian_u32(bytes, 16), 1400u);  // the script's default window size
  EXPECT_EQ(big_endian_u32(bytes, 20), 3000u);
  EXPECT_GT(bytes.size(), 50000u) << "a page with eight graphs compresses to more than this";
}

TEST(RenderConsole, UsageAndMissingTargetFileAreErrors) {
  const std::string script = std::string(UMBRA_SOURCE_DIR) + "/monitoring/render_console.sh";
  EXPECT_EQ(test::run_command(script).exit_code, 2);
  EXPECT_EQ(test::run_command(script + " --help").exit_code, 0);
  const test::CommandResult missing = test::run_command(script + " /nonexistent.json out.png");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("/nonexistent.json"), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace umbra
