#pragma once
// `dapx eval --report DIR`: summary.md (the tables) and SVG plots drawn by gnuplot (Debian
// gnuplot-nox): accuracy against budget per method at each length, accuracy against length
// per run.
#include <filesystem>
#include <nlohmann/json.hpp>

namespace dapx::eval {

// `summary` as summarize() returns it. Throws dapx::Error when gnuplot is missing or fails.
void write_report(const nlohmann::json& summary, const std::filesystem::path& dir);

}  // namespace dapx::eval
