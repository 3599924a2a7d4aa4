#pragma once
// Grouped bar charts as a standalone SVG file (no plotting dependency): benchmark drivers
// draw their ratio tables with it.
#include <string>
#include <vector>

namespace dapx::bench {

struct BarPanel {
  std::string title;                        // e.g. "TTFT (x full)"
  std::vector<std::vector<double>> values;  // [series][group]; NaN = no bar
};

// One panel per entry, stacked vertically; groups along x (e.g. methods), one colored bar per
// series (e.g. prompt length) with a legend, a dashed reference line at `reference` (1 = full).
std::string bar_chart_svg(const std::string& title, const std::vector<std::string>& groups,
                          const std::vector<std::string>& series,
                          const std::vector<BarPanel>& panels, double reference = 1.0);

}  // namespace dapx::bench
