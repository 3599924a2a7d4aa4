#include "svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace dapx::bench {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

std::string fmt(double v, const char* f = "%.2f") {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

std::string bar_chart_svg(const std::string& title, const std::vector<std::string>& groups,
                          const std::vector<std::string>& series,
                          const std::vector<BarPanel>& panels, double reference) {
  static const char* const colors[] = {"#4477aa", "#ee6677", "#228833",
                                       "#ccbb44", "#66ccee", "#aa3377"};
  const double left = 60, top = 50, panel_h = 170, gap = 60, group_w = 84,
               width = left + 20 + group_w * std::max<size_t>(1, groups.size());
  const double height = top + panels.size() * (panel_h + gap) + 20;
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << left << "\" y=\"20\" font-size=\"14\">" << escape(title) << "</text>\n";
  for (size_t s = 0; s < series.size(); ++s)  // legend
    svg << "<rect x=\"" << left + s * 110 << "\" y=\"28\" width=\"10\" height=\"10\" fill=\""
        << colors[s % 6] << "\"/><text x=\"" << left + s * 110 + 14 << "\" y=\"37\">"
        << escape(series[s]) << "</text>\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    const BarPanel& panel = panels[p];
    const double y0 = top + p * (panel_h + gap) + 20;  // panel top
    double vmax = reference;
    for (const auto& row : panel.values)
      for (double v : row)
        if (std::isfinite(v)) vmax = std::max(vmax, v);
    vmax *= 1.1;
    const auto y_of = [&](double v) { return y0 + panel_h * (1 - v / vmax); };
    svg << "<text x=\"" << left << "\" y=\"" << y0 - 6 << "\" font-weight=\"bold\">"
        << escape(panel.title) << "</text>\n";
    svg << "<line x1=\"" << left << "\" y1=\"" << y0 + panel_h << "\" x2=\"" << width - 10
        << "\" y2=\"" << y0 + panel_h << "\" stroke=\"black\"/>\n";
    for (double tick : {0.0, vmax / 2.2, vmax / 1.1})
      svg << "<text x=\"" << left - 4 << "\" y=\"" << y_of(tick) + 4 << "\" text-anchor=\"end\">"
          << fmt(tick) << "</text>\n";
    svg << "<line x1=\"" << left << "\" y1=\"" << y_of(reference) << "\" x2=\"" << width - 10
        << "\" y2=\"" << y_of(reference) << "\" stroke=\"gray\" stroke-dasharray=\"4 3\"/>\n";
    const double bar_w = (group_w - 10) / std::max<size_t>(1, series.size());
    for (size_t g = 0; g < groups.size(); ++g) {
      const double gx = left + 5 + g * group_w;
      for (size_t s = 0; s < panel.values.size() && s < series.size(); ++s) {
        const double v = g < panel.values[s].size() ? panel.values[s][g] : NAN;
        if (!std::isfinite(v)) continue;
        svg << "<rect x=\"" << gx + s * bar_w << "\" y=\"" << y_of(v) << "\" width=\"" << bar_w - 1
            << "\" height=\"" << y0 + panel_h - y_of(v) << "\" fill=\"" << colors[s % 6]
            << "\"><title>" << escape(groups[g]) << ", " << escape(series[s]) << ": "
            << fmt(v, "%.3f") << "</title></rect>\n"
            << "<text x=\"" << gx + s * bar_w + (bar_w - 1) / 2 << "\" y=\"" << y_of(v) - 2
            << "\" font-size=\"8\" text-anchor=\"middle\">" << fmt(v) << "</text>\n";
      }
      svg << "<text x=\"" << gx + (group_w - 10) / 2 << "\" y=\"" << y0 + panel_h + 14
          << "\" text-anchor=\"middle\">" << escape(groups[g]) << "</text>\n";
    }
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace dapx::bench
