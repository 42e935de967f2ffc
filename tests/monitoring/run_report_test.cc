// report.html (monitoring/run_report.h): on a hand-made run directory (both stages, epsilon,
// several grids, hostile config text), on an empty one, on bad input, and on the run directory a
// real `umbra train` of configs/tiny_test.yaml leaves behind -- which is also rendered with
// headless Chromium to umbra_report.png in the test's working directory for people to look at.
#include "monitoring/run_report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "core/check.h"
#include "core/png.h"
#include "monitoring/jsonl_log.h"
#include "monitoring/svg_chart.h"
#include "tests/monitoring/training_run.h"

namespace umbra {
namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

void write_gray_png(const std::string& path, int h, int w) {
  std::vector<uint8_t> pixels(static_cast<size_t>(h * w));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  write_png(path, pixels.data(), h, w, 1);
}

StepRecord record(const std::string& stage, int64_t step, double loss,
                  std::optional<double> epsilon = std::nullopt) {
  StepRecord r;
  r.stage = stage;
  r.step = step;
  r.time = 1.7e9 + static_cast<double>(step);
  r.loss = loss;
  r.lr = 1e-3;
  r.images_per_s = 400 + static_cast<double>(step);
  r.epsilon = epsilon;
  return r;
}

// Every <img src> of the page, as written.
std::vector<std::string> image_sources(const std::string& html) {
  std::vector<std::string> out;
  static const std::regex kImg("<img src=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), kImg); it != std::sregex_iterator();
       ++it)
    out.push_back((*it)[1].str());
  return out;
}

TEST(RunReport, ChartsNewestGridsAndConfig) {
  test::TempDir dir;
  const std::string run = dir.path() + "/private_run";
  std::filesystem::create_directories(run + "/samples");
  {
    JsonlLog log(jsonl_log_path(run));
    for (int s = 10; s <= 40; s += 10) log.write(record("autoencoder", s, 1.0 / s));
    log.write(record("prior", 5, 0.9, 0.5));
    log.write(record("prior", 10, std::nan(""), 0.8));  // a NaN loss is logged as null
    log.write(record("prior", 15, 0.7, 1.1));
  }
  test::write_text_file(run + "/config.yaml",
                        "run:\n  name: private_run\nprivacy:\n  enabled: true\n"
                        "  target_epsilon: 3\n# <script>alert(1)</script> & more\n");
  write_gray_png(run + "/samples/autoencoder_step_20.png", 62, 242);
  write_gray_png(run + "/samples/autoencoder_step_40.png", 62, 242);
  write_gray_png(run + "/samples/prior_step_5.png", 302, 242);
  write_gray_png(run + "/samples/prior_step_15.png", 302, 242);
  test::write_text_file(run + "/samples/notes.txt", "not a grid");

  write_run_report(run);
  const std::string html = test::read_text_file(run_report_path(run));
  EXPECT_EQ(html, run_report_html(run));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<title>Umbra run private_run</title>"), std::string::npos);
  // Loss per stage (2), epsilon (1, with the target from config.yaml), images/s (1).
  EXPECT_EQ(count(html, "<svg "), 4u);
  EXPECT_NE(html.find("Training loss: autoencoder"), std::string::npos);
  EXPECT_NE(html.find("Training loss: prior"), std::string::npos);
  EXPECT_NE(html.find(">target</text>"), std::string::npos);
  EXPECT_NE(html.find("Throughput"), std::string::npos);
  // Summary: the prior's NaN loss at step 10 does not count as its lowest; epsilon 1.1.
  EXPECT_NE(html.find("<td>prior</td><td>15</td><td>0.7</td><td>0.7</td><td>415</td>"
                      "<td>1.1</td><td>3</td>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("<td>autoencoder</td><td>40</td><td>0.025</td><td>0.025</td><td>440</td>"
                      "<td>not private</td><td>4</td>"),
            std::string::npos);
  // The newest grid of each stage, by relative path, scaled by a whole factor.
  EXPECT_EQ(image_sources(html), (std::vector<std::string>{"samples/autoencoder_step_40.png",
                                                           "samples/prior_step_15.png"}));
  EXPECT_NE(html.find("width=\"484\" height=\"124\""), std::string::npos) << "242 px scaled 2x";
  // Config verbatim, escaped; no script reaches the page; nothing external is loaded.
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));
  EXPECT_EQ(html.find("https://"), std::string::npos);
  // Atomic write: only report.html is left, no temporary sibling.
  for (const auto& e : std::filesystem::directory_iterator(run))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();

  // A later call replaces the page with the newer state.
  write_gray_png(run + "/samples/prior_step_20.png", 302, 242);
  write_run_report(run);
  EXPECT_NE(test::read_text_file(run_report_path(run)).find("samples/prior_step_20.png"),
            std::string::npos);
}

TEST(RunReport, EmptyRunDirectorySaysWhatIsMissing) {
  test::TempDir dir;
  write_run_report(dir.path());
  const std::string html = test::read_text_file(run_report_path(dir.path()));
  EXPECT_NE(html.find("No metrics.jsonl yet"), std::string::npos);
  EXPECT_NE(html.find("No sample grid yet"), std::string::npos);
  EXPECT_NE(html.find("No config.yaml"), std::string::npos);
  EXPECT_EQ(count(html, "<svg "), 0u);
}

TEST(RunReport, BadInputNamesTheFile) {
  EXPECT_THROW(
      {
        try {
          write_run_report("/nonexistent/run");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("/nonexistent/run"), std::string::npos);
          throw;
        }
      },
      Error);
  test::TempDir dir;
  test::write_text_file(dir.path() + "/metrics.jsonl",
                        "{\"stage\":\"prior\",\"step\":\"x\"}\n{}\n");
  try {
    write_run_report(dir.path());
    ADD_FAILURE() << "a malformed metrics.jsonl was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(run_report_path(dir.path())));
  // Config that is not YAML is still shown; only the target epsilon is lost.
  test::TempDir other;
  test::write_text_file(other.path() + "/config.yaml", "run: [unclosed\n");
  write_run_report(other.path());
  EXPECT_NE(test::read_text_file(run_report_path(other.path())).find("run: [unclosed"),
            std::string::npos);
}

// The run directory a real 1-process `umbra train` of configs/tiny_test.yaml leaves: both stages,
// their grids, the resolved config.
TEST(RunReport, RealTinyRun) {
  if (!std::filesystem::exists(test::kFashionMnist)) GTEST_SKIP() << test::kFashionMnist;
  test::TempDir dir;
  std::string why;
  const std::string data = test::pack_fashion_mnist_subset(dir.path(), 256, 32, &why);
  ASSERT_FALSE(data.empty()) << why;
  const std::string command = test::tiny_train_command(1, data, dir.path() + "/runs", "report", "");
  const test::CommandResult r = test::run_command("timeout -k 5 100 " + command);
  ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.output;
  const std::string run = dir.path() + "/runs/report";

  write_run_report(run);
  const std::string html = test::read_text_file(run_report_path(run));
  EXPECT_NE(html.find("<title>Umbra run report</title>"), std::string::npos);
  EXPECT_NE(html.find("Training loss: autoencoder"), std::string::npos);
  EXPECT_NE(html.find("Training loss: prior"), std::string::npos);
  EXPECT_EQ(html.find("Privacy spent"), std::string::npos) << "tiny_test.yaml is not private";
  EXPECT_EQ(count(html, "<svg "), 3u);
  EXPECT_EQ(html.find("no data"), std::string::npos);
  const std::vector<std::string> images = image_sources(html);
  EXPECT_EQ(images, (std::vector<std::string>{"samples/autoencoder_step_4.png",
                                              "samples/prior_step_4.png"}));
  for (const std::string& src : images)
    EXPECT_TRUE(std::filesystem::exists(run + "/" + src)) << src;
  // The resolved config, as the run wrote it.
  EXPECT_NE(html.find(html_escape(test::read_text_file(run + "/config.yaml"))), std::string::npos);

  // A picture of it for people (kept in the test's working directory).
  if (!test::run_command("command -v chromium").output.empty()) {
    const std::string png = std::filesystem::absolute("umbra_report.png").string();
    const test::CommandResult shot = test::run_command(
        "timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run "
        "--user-data-dir=" +
        dir.path() +
        "/chromium --hide-scrollbars --window-size=1400,2400 "
        "--screenshot=" +
        png + " file://" + run + "/report.html");
    EXPECT_EQ(shot.exit_code, 0) << shot.output;
    EXPECT_GT(std::filesystem::file_size(png), 20000u) << "a page with charts and grids";
  }
}

}  // namespace
}  // namespace umbra
