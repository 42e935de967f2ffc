#include "monitoring/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "core/check.h"

namespace umbra {

namespace {

constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c",
                                    "#ff7f0e", "#9467bd", "#8c564b"};
constexpr int kMarginLeft = 70;
constexpr int kMarginRight = 16;
constexpr int kMarginTop = 34;
constexpr int kMarginBottom = 44;
constexpr size_t kMaxDottedPoints = 40;  // draw a dot per point on short series

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
};

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// A tick label with as many decimals as the tick spacing needs, or %g for extreme magnitudes.
std::string tick_label(double v, double spacing) {
  if (std::abs(v) < spacing * 1e-9) v = 0.0;  // -0 and rounding noise
  const double magnitude = std::max(std::abs(v), spacing);
  if (magnitude >= 1e6 || magnitude < 1e-3) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.3g", v);
    return buf;
  }
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(spacing) + 1e-9)));
  return fixed(v, decimals);
}

std::string coordinate(double v) { return fixed(v, 1); }

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target_count) {
  UMBRA_ASSERT(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "nice_ticks range [", lo, ", ",
               hi, "]");
  UMBRA_ASSERT(target_count >= 2, "nice_ticks target_count ", target_count);
  if (hi - lo <= std::abs(hi) * 1e-12) {
    const double pad = lo == 0.0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / (target_count - 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double spacing = (norm < 1.5   ? 1.0
                          : norm < 3.0 ? 2.0
                          : norm < 7.0 ? 5.0
                                       : 10.0) *
                         magnitude;
  const double first = std::floor(lo / spacing + 1e-9);
  const double last = std::ceil(hi / spacing - 1e-9);
  std::vector<double> ticks;
  for (double i = first; i <= last; i += 1.0) ticks.push_back(i * spacing);
  return ticks;
}

std::string svg_line_chart(const std::vector<ChartSeries>& series, const ChartOptions& options) {
  const int w = options.width;
  const int h = options.height;
  const int plot_w = w - kMarginLeft - kMarginRight;
  const int plot_h = h - kMarginTop - kMarginBottom;
  UMBRA_ASSERT(plot_w > 50 && plot_h > 50, "chart of ", w, "x", h, " pixels is too small");

  Range xr, yr;
  for (const ChartSeries& s : series) {
    UMBRA_ASSERT(s.x.size() == s.y.size(), "series '", s.name, "': ", s.x.size(), " x values but ",
                 s.y.size(), " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        xr.add(s.x[i]);
        yr.add(s.y[i]);
      }
    }
  }

  std::ostringstream out;
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" << w << "\" height=\""
      << h << "\" viewBox=\"0 0 " << w << " " << h << "\" role=\"img\""
      << " aria-label=\"" << html_escape(options.title) << "\""
      << " font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"" << w << "\" height=\"" << h << "\" fill=\"#fff\"/>\n"
      << "<text x=\"" << kMarginLeft << "\" y=\"18\" font-size=\"14\" font-weight=\"bold\">"
      << html_escape(options.title) << "</text>\n";

  if (xr.empty()) {
    out << "<rect x=\"" << kMarginLeft << "\" y=\"" << kMarginTop << "\" width=\"" << plot_w
        << "\" height=\"" << plot_h << "\" fill=\"none\" stroke=\"#999\"/>\n"
        << "<text x=\"" << kMarginLeft + plot_w / 2 << "\" y=\"" << kMarginTop + plot_h / 2
        << "\" text-anchor=\"middle\" fill=\"#666\">no data</text>\n</svg>\n";
    return out.str();
  }
  if (options.y_reference && std::isfinite(*options.y_reference)) yr.add(*options.y_reference);
  if (options.y_from_zero) yr.add(0.0);

  std::vector<double> xt = nice_ticks(xr.lo, xr.hi, 6);
  if (options.x_integer && xt.size() > 1 && xt[1] - xt[0] < 1.0) {
    xt.clear();
    for (double x = std::floor(xr.lo) - (xr.lo == xr.hi); x <= std::ceil(xr.hi) + (xr.lo == xr.hi);
         x += 1.0)
      xt.push_back(x);
  }
  const std::vector<double> yt = nice_ticks(yr.lo, yr.hi, 5);
  const double x0 = xt.front(), x1 = xt.back();
  const double y0 = yt.front(), y1 = yt.back();
  auto px = [&](double x) { return kMarginLeft + (x - x0) / (x1 - x0) * plot_w; };
  auto py = [&](double y) { return kMarginTop + plot_h - (y - y0) / (y1 - y0) * plot_h; };

  // Grid and tick labels.
  const double xs = xt.size() > 1 ? xt[1] - xt[0] : 1.0;
  const double ys = yt.size() > 1 ? yt[1] - yt[0] : 1.0;
  out << "<g stroke=\"#e5e5e5\">\n";
  for (double x : xt)
    out << "<line x1=\"" << coordinate(px(x)) << "\" x2=\"" << coordinate(px(x)) << "\" y1=\""
        << kMarginTop << "\" y2=\"" << kMarginTop + plot_h << "\"/>\n";
  for (double y : yt)
    out << "<line x1=\"" << kMarginLeft << "\" x2=\"" << kMarginLeft + plot_w << "\" y1=\""
        << coordinate(py(y)) << "\" y2=\"" << coordinate(py(y)) << "\"/>\n";
  out << "</g>\n<g fill=\"#333\">\n";
  for (double x : xt)
    out << "<text x=\"" << coordinate(px(x)) << "\" y=\"" << kMarginTop + plot_h + 16
        << "\" text-anchor=\"middle\">" << tick_label(x, xs) << "</text>\n";
  for (double y : yt)
    out << "<text x=\"" << kMarginLeft - 6 << "\" y=\"" << coordinate(py(y) + 4)
        << "\" text-anchor=\"end\">" << tick_label(y, ys) << "</text>\n";
  out << "<text x=\"" << kMarginLeft + plot_w / 2 << "\" y=\"" << h - 6
      << "\" text-anchor=\"middle\">" << html_escape(options.x_label) << "</text>\n"
      << "<text transform=\"translate(14 " << kMarginTop + plot_h / 2
      << ") rotate(-90)\" text-anchor=\"middle\">" << html_escape(options.y_label) << "</text>\n"
      << "</g>\n<rect x=\"" << kMarginLeft << "\" y=\"" << kMarginTop << "\" width=\"" << plot_w
      << "\" height=\"" << plot_h << "\" fill=\"none\" stroke=\"#999\"/>\n";

  // Legend, right-aligned on the title line (about 7 px per character).
  struct Entry {
    std::string label, colour;
    bool dashed;
  };
  std::vector<Entry> legend;
  for (size_t i = 0; i < series.size(); ++i)
    legend.push_back({series[i].name, kColours[i % std::size(kColours)], false});
  if (options.y_reference && std::isfinite(*options.y_reference))
    legend.push_back({options.y_reference_label, "#555", true});
  double lx = w - kMarginRight;
  for (auto it = legend.rbegin(); it != legend.rend(); ++it) {
    lx -= 7.0 * static_cast<double>(it->label.size());
    out << "<text x=\"" << coordinate(lx) << "\" y=\"18\">" << html_escape(it->label)
        << "</text>\n<line x1=\"" << coordinate(lx - 22) << "\" x2=\"" << coordinate(lx - 4)
        << "\" y1=\"14\" y2=\"14\" stroke=\"" << it->colour << "\" stroke-width=\"2\""
        << (it->dashed ? " stroke-dasharray=\"5 3\"" : "") << "/>\n";
    lx -= 34;
  }

  if (options.y_reference && std::isfinite(*options.y_reference)) {
    const std::string y = coordinate(py(*options.y_reference));
    out << "<line x1=\"" << kMarginLeft << "\" x2=\"" << kMarginLeft + plot_w << "\" y1=\"" << y
        << "\" y2=\"" << y
        << "\" stroke=\"#555\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\n";
  }

  for (size_t i = 0; i < series.size(); ++i) {
    const ChartSeries& s = series[i];
    const char* colour = kColours[i % std::size(kColours)];
    std::ostringstream path;
    bool pen_down = false;
    for (size_t k = 0; k < s.x.size(); ++k) {
      if (!std::isfinite(s.x[k]) || !std::isfinite(s.y[k])) {
        pen_down = false;
        continue;
      }
      path << (pen_down ? " L" : " M") << coordinate(px(s.x[k])) << " " << coordinate(py(s.y[k]));
      pen_down = true;
    }
    out << "<path d=\"" << path.str() << "\" fill=\"none\" stroke=\"" << colour
        << "\" stroke-width=\"2\" stroke-linejoin=\"round\"><title>" << html_escape(s.name)
        << "</title></path>\n";
    // Dots: on short series every point (a tiny run logs a handful), else only isolated ones.
    for (size_t k = 0; k < s.x.size(); ++k) {
      if (!std::isfinite(s.x[k]) || !std::isfinite(s.y[k])) continue;
      const bool isolated = (k == 0 || !std::isfinite(s.y[k - 1])) &&
                            (k + 1 == s.x.size() || !std::isfinite(s.y[k + 1]));
      if (s.x.size() <= kMaxDottedPoints || isolated)
        out << "<circle cx=\"" << coordinate(px(s.x[k])) << "\" cy=\"" << coordinate(py(s.y[k]))
            << "\" r=\"3\" fill=\"" << colour << "\"/>\n";
    }
  }
  out << "</svg>\n";
  return out.str();
}

}  // namespace umbra
