#pragma once
// Which seeds of the evaluation split are for what. Sample i of a run uses seed + i.
#include <cstdint>

namespace dapx::eval {

// Reporting: seeds 0-49 give the figures the documentation reports (dapx eval's default --seed).
// Nothing is chosen on them.
inline constexpr uint64_t kReportSeed = 0;
inline constexpr uint64_t kReportSeeds = 50;

// Validation: every choice (a checkpoint during dapx train, a draft, a budget, a method's
// parameters) is made on seeds from here on (dapx eval --validation, dapx analyze's default),
// so that the reported figures are measured on prompts nothing was chosen on.
inline constexpr uint64_t kValidationSeed = 10000;

}  // namespace dapx::eval
