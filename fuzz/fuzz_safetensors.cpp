// Fuzz target: the safetensors reader.
//  - Every input is parsed as a safetensors image held in a heap buffer of exactly its size
//    (parse_safetensors: header length, header JSON, dtypes, shapes, offsets, overlaps), so
//    AddressSanitizer sees any read past it; every accepted tensor must lie inside the image
//    and is read back with to_float_vector. An accepted image is also written to a file and
//    opened with SafetensorsFile::open (the memory mapping), which must agree.
//  - Inputs that look like JSON are also tried as model.safetensors.index.json next to two
//    small valid shards (WeightStore::open: weight_map, shard names, tensors missing from
//    their shard).
// dapx::Error is the expected rejection; anything else (another exception, a crash, a
// sanitizer report, a failed check) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace {

using namespace dapx;

std::vector<std::byte> bytes_of(size_t n, uint8_t fill) {
  return std::vector<std::byte>(n, static_cast<std::byte>(fill));
}

void check_view(const TensorView& t, const std::byte* begin, const std::byte* end) {
  FUZZ_CHECK(static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype) == t.nbytes, t.name);
  FUZZ_CHECK(t.nbytes == 0 || (t.data >= begin && t.nbytes <= static_cast<size_t>(end - t.data)),
             t.name + " lies outside the image");
  const std::vector<float> values = to_float_vector(t);
  FUZZ_CHECK(values.size() == static_cast<size_t>(t.numel()), t.name);
}

// The file reader on the same bytes: same tensors, same contents.
void check_file_agrees(const std::string& input, const std::map<std::string, TensorView>& mem) {
  static const std::filesystem::path path = fuzz::scratch_dir() / "model.safetensors";
  test::write_file(path, input);
  FUZZ_CHECK(std::filesystem::file_size(path) == input.size(), "cannot write " + path.string());
  const auto file = SafetensorsFile::open(path);
  FUZZ_CHECK(file->tensors().size() == mem.size(), "tensor count");
  for (const auto& [name, t] : file->tensors()) {
    const auto it = mem.find(name);
    FUZZ_CHECK(it != mem.end(), name);
    const TensorView& m = it->second;
    FUZZ_CHECK(t.dtype == m.dtype && t.shape == m.shape && t.nbytes == m.nbytes, name);
    FUZZ_CHECK(t.nbytes == 0 || std::memcmp(t.data, m.data, t.nbytes) == 0, name);
  }
}

void fuzz_image(const std::string& input) {
  std::vector<std::byte> image(input.size());
  if (!input.empty()) std::memcpy(image.data(), input.data(), input.size());
  std::map<std::string, TensorView> tensors;
  try {
    tensors = parse_safetensors(image.data(), image.size(), "fuzz.safetensors");
  } catch (const Error&) {
    return;
  }
  uint64_t total = 0;
  for (const auto& [name, t] : tensors) {
    FUZZ_CHECK(name == t.name, name);
    check_view(t, image.data(), image.data() + image.size());
    total += t.nbytes;
    FUZZ_CHECK(total <= image.size(), "tensors overlap");
  }
  check_file_agrees(input, tensors);
}

// A model directory with two valid shards; the input becomes its index.
const std::filesystem::path& sharded_dir() {
  static const std::filesystem::path dir = [] {
    const auto d = fuzz::scratch_dir() / "sharded";
    std::filesystem::create_directories(d);
    write_safetensors(d / "model-00001-of-00002.safetensors",
                      {{"a", DType::F32, {2}, bytes_of(8, 1)},
                       {"b", DType::BF16, {2, 2}, bytes_of(8, 2)},
                       {"empty", DType::F16, {0, 3}, {}}},
                      {{"format", "pt"}});
    write_safetensors(d / "model-00002-of-00002.safetensors",
                      {{"c", DType::F16, {3}, bytes_of(6, 3)}});
    return d;
  }();
  return dir;
}

void fuzz_index(const std::string& input) {
  const auto& dir = sharded_dir();
  const auto index = dir / "model.safetensors.index.json";
  test::write_file(index, input);
  FUZZ_CHECK(std::filesystem::file_size(index) == input.size(), "cannot write the index");
  try {
    const WeightStore store = WeightStore::open(dir);
    size_t total = 0;
    for (const std::string& name : store.names()) {
      const TensorView& t = store.get(name);
      FUZZ_CHECK(t.name == name, name);
      total += t.nbytes;
      to_float_vector(t);
    }
    FUZZ_CHECK(total == store.total_bytes(), "total_bytes");
  } catch (const Error&) {
  }
}

bool looks_like_json(const std::string& input) {
  const size_t first = input.find_first_not_of(" \t\r\n");
  return first != std::string::npos && input[first] == '{';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = fuzz::as_string(data, size);
  fuzz_image(input);
  if (looks_like_json(input)) fuzz_index(input);
  return 0;
}
