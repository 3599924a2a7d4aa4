#pragma once
// Programs run as child processes, without a shell: arguments reach the program as they are,
// so paths with spaces or quotes need no quoting.
#include <string>
#include <vector>

namespace dapx::bench {

struct ProcessResult {
  int exit_code = -1;  // the exit status; -1 when a signal ended the program
  int signal = 0;      // the signal that ended it (SIGKILL: often the kernel's OOM killer)
  std::string out;     // everything it wrote to stdout
};

// Runs argv[0] (searched on PATH when it has no '/') and waits for it; its stdout is captured,
// its stderr written to `err_path` ("" = discarded). Throws dapx::Error when it cannot start.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& err_path);

// The path of the executable `name` on PATH, or "" when there is none.
std::string find_program(const std::string& name);

}  // namespace dapx::bench
