#pragma once
// What `dapx bench` writes from its rows (bench_rows.h): the table it prints, the CSV, and the
// plot of latency and memory against prompt length, drawn by gnuplot.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace dapx::bench {

// One line per row: each figure with its ratio to full beside it, the draft's share, the KV
// kept, the fractions of the GEMM rate and read bandwidth, and throughput when measured.
std::string table_text(const nlohmann::json& rows);

// One line per row, the scalar fields in a fixed column order; empty cells for null.
std::string csv_text(const nlohmann::json& rows);

// Writes `text` to `path`; throws dapx::Error naming the path when that fails.
void write_text(const std::filesystem::path& path, const std::string& text);

// Writes DIR/bench.gp, a gnuplot script of two panels (end-to-end latency and working memory
// against prompt length, one line per method), and runs gnuplot on it for DIR/bench.svg.
// Returns "" on success, else a warning saying why there is no SVG (gnuplot missing or failing).
std::string write_plot(const std::filesystem::path& dir, const nlohmann::json& rows,
                       const std::string& title);

}  // namespace dapx::bench
