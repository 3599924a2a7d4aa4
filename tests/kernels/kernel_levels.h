#pragma once
// The CPU kernel levels a kernel test runs: each level it asks for that this CPU has, once,
// named by what runs. A level the CPU lacks is left out (never run again as a narrower one under
// its name); the test prints the levels it ran and those it left out with the missing CPU
// feature, and records both as test properties (in ctest's and gtest's XML output).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <vector>

#include "model/cpu_features.h"

namespace dapx::test {

inline const char* level_name(CpuKernels k) {
  switch (k) {
    case CpuKernels::kAvx512:
      return "avx512";
    case CpuKernels::kAvx2:
      return "avx2";
    case CpuKernels::kPortable:
      return "portable";
    default:
      return "best";
  }
}

// What the kernels under test need for their AVX-512 loops: AVX-512F, or VNNI and BW as well
// (the int8 GEMV).
enum class Avx512Needs { kF, kVnni };

// The CPU features the levels depend on.
struct CpuHas {
  bool avx2 = false, avx512 = false, avx512_vnni = false;
};
inline CpuHas this_cpu() { return {cpu_has_avx2(), cpu_has_avx512(), cpu_has_avx512_vnni()}; }

struct LevelPlan {
  std::vector<CpuKernels> run;  // each level once, in the order asked
  std::string ran, left_out;    // "avx2, portable"; "avx512 (no AVX-512F on this CPU)"
};

// The levels of `wanted` a CPU with `has` runs (kBest becomes the level it is), and those it
// cannot, with the feature it lacks.
inline LevelPlan plan_levels(std::initializer_list<CpuKernels> wanted, Avx512Needs needs,
                             CpuHas has) {
  const bool avx512 = has.avx2 && has.avx512 && (needs == Avx512Needs::kF || has.avx512_vnni);
  LevelPlan plan;
  for (CpuKernels w : wanted) {
    std::string missing;
    if ((w == CpuKernels::kAvx2 || w == CpuKernels::kAvx512) && !has.avx2)
      missing = "AVX2 + FMA";
    else if (w == CpuKernels::kAvx512 && !has.avx512)
      missing = "AVX-512F";
    else if (w == CpuKernels::kAvx512 && !avx512)
      missing = "AVX-512 VNNI + BW";
    if (!missing.empty()) {
      plan.left_out += std::string(plan.left_out.empty() ? "" : ", ") + level_name(w) + " (no " +
                       missing + " on this CPU)";
      continue;
    }
    CpuKernels level = w;
    if (w == CpuKernels::kBest)
      level = avx512 ? CpuKernels::kAvx512 : has.avx2 ? CpuKernels::kAvx2 : CpuKernels::kPortable;
    if (std::find(plan.run.begin(), plan.run.end(), level) != plan.run.end()) continue;
    plan.run.push_back(level);
    plan.ran += std::string(plan.ran.empty() ? "" : ", ") + level_name(level);
  }
  return plan;
}

// The levels of `wanted` this CPU runs; prints them and those left out, and records both.
inline std::vector<CpuKernels> kernel_levels(std::initializer_list<CpuKernels> wanted,
                                             Avx512Needs needs = Avx512Needs::kF) {
  const LevelPlan plan = plan_levels(wanted, needs, this_cpu());
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::printf("[ levels ] %s.%s: ran %s%s%s\n", info ? info->test_suite_name() : "",
              info ? info->name() : "", plan.ran.c_str(),
              plan.left_out.empty() ? "" : "; left out ", plan.left_out.c_str());
  ::testing::Test::RecordProperty("kernel_levels_run", plan.ran);
  if (!plan.left_out.empty())
    ::testing::Test::RecordProperty("kernel_levels_left_out", plan.left_out);
  return plan.run;
}

}  // namespace dapx::test
