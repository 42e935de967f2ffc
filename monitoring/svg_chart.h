// Line charts as inline SVG text, for report.html (monitoring/run_report.h): no script, no external
// file, readable in any browser and in a saved copy of the page.
//
//   ChartOptions options;
//   options.title = "Loss";
//   options.x_label = "step";
//   std::string svg = svg_line_chart({ChartSeries{"prior", steps, losses}}, options);
//
// Axes get "nice" ticks (1, 2, 5 x 10^k) spanning the data; every series is one polyline with its
// own colour and a legend entry. A non-finite y (a NaN loss, logged as null) breaks the line
// rather than dropping to zero; a series with a single finite point is drawn as a dot. With no
// finite point at all the chart says "no data". Pure function; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/html_escape.h"

namespace umbra {

struct ChartSeries {
  std::string name;       // legend text (escaped for HTML by the chart)
  std::vector<double> x;  // same length as y
  std::vector<double> y;
};

struct ChartOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  int width = 640;  // pixels
  int height = 280;
  bool x_integer = false;             // x is a count (steps): no ticks between whole numbers
  bool y_from_zero = false;           // include 0 in the y range (throughput, epsilon)
  std::optional<double> y_reference;  // a dashed horizontal line (e.g. the target epsilon)
  std::string y_reference_label;      // its legend text
};

std::string svg_line_chart(const std::vector<ChartSeries>& series, const ChartOptions& options);

// "Nice" tick positions covering [lo, hi]: about `target_count` values, a multiple of
// 1, 2 or 5 x 10^k apart, first <= lo and last >= hi. lo == hi gives ticks around the value.
std::vector<double> nice_ticks(double lo, double hi, int target_count = 5);

}  // namespace umbra
