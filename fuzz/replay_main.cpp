// A main() for the fuzz targets in builds without libFuzzer (gcc, DAPX_FUZZ=OFF): runs
// LLVMFuzzerTestOneInput once on every file given, or on every file of every folder given
// (in name order). Used by the ctest tests fuzz.replay.<target>, which replay the committed
// corpora so that each past crash stays fixed. Exits non-zero when a folder is missing or
// empty; a crashing input aborts (its path is printed first).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

char current_line[4096];  // "fuzz replay: crash on input PATH\n", for the signal handler
size_t current_line_size = 0;

// A failed FUZZ_CHECK or a sanitizer abort: name the input, then die of the same signal.
void on_signal(int sig) {
  ssize_t ignored = ::write(STDERR_FILENO, current_line, current_line_size);
  (void)ignored;
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void on_terminate() {
  std::fprintf(stderr, "fuzz replay: uncaught exception");
  if (const std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, ": %s", ex.what());
    } catch (...) {
    }
  }
  std::fprintf(stderr, "\n");
  std::abort();  // on_signal names the input
}

}  // namespace

int main(int argc, char** argv) {
  std::set_terminate(on_terminate);
  for (const int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, on_signal);
  namespace fs = std::filesystem;
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = argv[i];
    if (fs::is_directory(arg)) {
      std::vector<fs::path> files;
      for (const auto& entry : fs::directory_iterator(arg)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      if (files.empty()) {
        std::fprintf(stderr, "fuzz replay: no inputs in %s\n", arg.c_str());
        return 1;
      }
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else if (fs::is_regular_file(arg)) {
      inputs.push_back(arg);
    } else {
      std::fprintf(stderr, "fuzz replay: %s is neither a file nor a folder\n", arg.c_str());
      return 1;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "usage: %s FILE_OR_FOLDER...\n", argv[0]);
    return 1;
  }
  for (const fs::path& path : inputs) {
    current_line_size = static_cast<size_t>(std::snprintf(
        current_line, sizeof(current_line), "fuzz replay: crash on input %s\n", path.c_str()));
    current_line_size = std::min(current_line_size, sizeof(current_line) - 1);
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "fuzz replay: cannot read %s\n", path.c_str());
      return 1;
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("fuzz replay: %zu inputs ran cleanly\n", inputs.size());
  return 0;
}
