// The inline SVG charts of report.html: tick choice, a NaN breaks the line, the reference line,
// escaping, and a well-formed document for every case (checked by a real XML parser).
#include "monitoring/svg_chart.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/monitoring/prometheus_server.h"

namespace umbra {
namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Parses `svg` with Python's XML parser (/usr/bin/python3 is part of the test environment).
void expect_well_formed(const std::string& svg) {
  test::TempDir dir;
  test::write_text_file(dir.path() + "/c.svg", svg);
  const test::CommandResult r = test::run_command(std::string(UMBRA_PYTHON) +
                                                  " -c 'import sys, xml.dom.minidom as m; "
                                                  "m.parse(sys.argv[1])' " +
                                                  dir.path() + "/c.svg");
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << svg;
}

TEST(NiceTicks, CoverTheRangeWithRoundSpacing) {
  EXPECT_EQ(nice_ticks(0, 100, 6), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  EXPECT_EQ(nice_ticks(2, 4, 5), (std::vector<double>{2, 2.5, 3, 3.5, 4}));
  const std::vector<double> t = nice_ticks(0.013, 0.087, 5);
  ASSERT_GE(t.size(), 2u);
  EXPECT_LE(t.front(), 0.013);
  EXPECT_GE(t.back(), 0.087);
  EXPECT_NEAR(t[1] - t[0], 0.02, 1e-12);
  // A single value gets a range around it instead of a zero-width axis.
  const std::vector<double> one = nice_ticks(5, 5, 5);
  EXPECT_LT(one.front(), 5);
  EXPECT_GT(one.back(), 5);
  EXPECT_EQ(nice_ticks(0, 0, 5).size() > 1, true);
}

TEST(SvgLineChart, DrawsSeriesLegendAndAxes) {
  ChartOptions o;
  o.title = "Loss <prior>";
  o.x_label = "step";
  o.y_label = "loss";
  const std::string svg = svg_line_chart(
      {{"autoencoder", {1, 2, 3}, {0.5, 0.4, 0.3}}, {"prior & co", {1, 2}, {1, 2}}}, o);
  expect_well_formed(svg);
  EXPECT_EQ(count(svg, "<path "), 2u);
  EXPECT_NE(svg.find("Loss &lt;prior&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">prior &amp; co</text>"), std::string::npos);
  EXPECT_NE(svg.find(">step</text>"), std::string::npos);
  EXPECT_EQ(count(svg, "<circle "), 5u) << "short series get a dot per point";
}

TEST(SvgLineChart, NonFiniteValueBreaksTheLine) {
  const double nan = std::nan("");
  const std::string svg = svg_line_chart({{"loss", {1, 2, 3, 4, 5}, {1, 2, nan, 4, 5}}}, {});
  expect_well_formed(svg);
  const size_t d = svg.find("d=\"");
  ASSERT_NE(d, std::string::npos);
  const std::string path = svg.substr(d, svg.find('"', d + 3) - d);
  EXPECT_EQ(count(path, "M"), 2u) << path;
  EXPECT_EQ(count(path, "L"), 2u) << path;
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

TEST(SvgLineChart, ReferenceLineAndEmptyChart) {
  ChartOptions o;
  o.y_reference = 8.0;
  o.y_reference_label = "target";
  o.y_from_zero = true;
  const std::string svg = svg_line_chart({{"prior", {10, 20}, {1.5, 3.0}}}, o);
  expect_well_formed(svg);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  EXPECT_NE(svg.find(">target</text>"), std::string::npos);
  EXPECT_NE(svg.find(">8</text>"), std::string::npos) << "the y axis reaches the target";
  EXPECT_NE(svg.find(">0</text>"), std::string::npos) << "the y axis starts at 0";

  const std::string empty = svg_line_chart({}, o);
  expect_well_formed(empty);
  EXPECT_NE(empty.find("no data"), std::string::npos);
  const std::string all_nan = svg_line_chart({{"x", {1}, {std::nan("")}}}, {});
  expect_well_formed(all_nan);
  EXPECT_NE(all_nan.find("no data"), std::string::npos);
}

TEST(SvgLineChart, IntegerAxisHasNoFractionalTicks) {
  ChartOptions o;
  o.x_integer = true;
  const std::string svg = svg_line_chart({{"loss", {2, 4}, {1.0, 0.5}}}, o);
  expect_well_formed(svg);
  for (const char* tick : {">2</text>", ">3</text>", ">4</text>"})
    EXPECT_NE(svg.find(tick), std::string::npos) << tick;
  EXPECT_EQ(svg.find(">2.5</text>"), std::string::npos);
  o.x_integer = false;
  EXPECT_NE(svg_line_chart({{"loss", {2, 4}, {1.0, 0.5}}}, o).find(">2.5</text>"),
            std::string::npos);
}

TEST(HtmlEscape, EscapesMarkupCharacters) {
  EXPECT_EQ(html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(html_escape("plain ε"), "plain ε");
}

}  // namespace
}  // namespace umbra
