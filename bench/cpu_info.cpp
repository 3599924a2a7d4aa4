#include "cpu_info.h"

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace dapx::bench {

nlohmann::json cpu_info() {
  std::string model = "unknown", flags;
  std::ifstream in("/proc/cpuinfo");
  // The first processor's lines are enough: the cores of one machine share a model.
  for (std::string line; std::getline(in, line) && (model == "unknown" || flags.empty());) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name") model = value;
    if (key == "flags") flags = " " + value + " ";
  }
  nlohmann::json j = {{"cpu_model", model},
                      {"cpu_flags", nlohmann::json::object()},
                      {"hardware_threads", std::thread::hardware_concurrency()}};
  for (const char* f : {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"})
    j["cpu_flags"][f] = flags.find(std::string(" ") + f + " ") != std::string::npos;
  return j;
}

}  // namespace dapx::bench
