// Fuzz target: the GGUF reader and the ggml block decoders.
//  - Every input is parsed as a GGUF image held in a heap buffer of exactly its size
//    (parse_gguf: magic, version, counts, metadata of every type, tensor infos, alignment,
//    offsets, sizes, overlaps), so AddressSanitizer sees any read past it.
//  - An accepted image: every tensor lies inside it with the size its shape and type need, every
//    decodable tensor is dequantised (whole and one row), every metadata value goes through the
//    typed getters, the writer re-creates the image from what was read and the reader reads that
//    back to the same metadata and bytes, and the file reader (mmap) agrees with the memory one.
// dapx::Error is the expected rejection; anything else (another exception, a crash, a
// sanitizer report, a failed check) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "io/gguf.h"
#include "io/gguf_quant.h"
#include "util/error.h"

namespace {

using namespace dapx;

// Each getter either answers or throws dapx::Error; nothing else.
void exercise_getters(const GgufMetadata& m) {
  for (const auto& entry : m.entries()) {
    const std::string& key = entry.first;  // a named variable: C++17 lambdas cannot capture a
                                           // structured binding
    const GgufValue& value = entry.second;
    FUZZ_CHECK(m.find(key) == &value, key);
    const auto try_get = [&](auto&& get) {
      try {
        get();
      } catch (const Error&) {
      }
    };
    try_get([&] { m.get_string(key); });
    try_get([&] { m.get_u32(key); });
    try_get([&] { m.get_int(key); });
    try_get([&] { m.get_float(key); });
    try_get([&] { m.get_bool(key); });
    try_get([&] { m.get_string_array(key); });
    try_get([&] { m.get_int_array(key); });
    try_get([&] { m.get_float_array(key); });
    FUZZ_CHECK(value.is_array() || value.size() == 1, key);
  }
}

void check_tensor(const GgufTensor& t, const std::byte* begin, const std::byte* end) {
  FUZZ_CHECK(!t.shape.empty() && t.shape.size() <= 4, t.name);
  const GgmlTypeInfo& info = ggml_type_info(t.type);
  const uint64_t bytes =
      static_cast<uint64_t>(t.num_rows()) * ggml_row_bytes(t.type, t.row_length());
  FUZZ_CHECK(t.numel() == 0 ? t.nbytes == 0 : bytes == t.nbytes, t.name);
  FUZZ_CHECK(t.nbytes == 0 || (t.data >= begin && t.nbytes <= static_cast<size_t>(end - t.data)),
             t.name + " lies outside the image");
  if (!info.dequantizable) return;
  const std::vector<float> all = gguf_tensor_to_float(t);
  FUZZ_CHECK(all.size() == static_cast<size_t>(t.numel()), t.name);
  if (t.num_rows() > 0) {
    const int64_t last = t.num_rows() - 1;
    std::vector<float> row(static_cast<size_t>(t.row_length()));
    dequantize_rows(t, last, 1, row.data());
    FUZZ_CHECK(std::memcmp(row.data(), all.data() + last * t.row_length(),
                           row.size() * sizeof(float)) == 0,
               t.name + ": one row differs from the whole tensor");
  }
}

void check_same(const GgufContents& a, const GgufContents& b, const std::string& what) {
  FUZZ_CHECK(a.metadata().entries().size() == b.metadata().entries().size(), what);
  for (size_t i = 0; i < a.metadata().entries().size(); ++i) {
    const auto& [ka, va] = a.metadata().entries()[i];
    const auto& [kb, vb] = b.metadata().entries()[i];
    FUZZ_CHECK(ka == kb && va == vb, what + ": key " + ka);
  }
  FUZZ_CHECK(a.tensors().size() == b.tensors().size(), what);
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const GgufTensor& ta = a.tensors()[i];
    const GgufTensor& tb = b.tensors()[i];
    FUZZ_CHECK(ta.name == tb.name && ta.type == tb.type && ta.shape == tb.shape, ta.name);
    FUZZ_CHECK(ta.nbytes == tb.nbytes, ta.name);
    FUZZ_CHECK(ta.nbytes == 0 || std::memcmp(ta.data, tb.data, ta.nbytes) == 0, ta.name);
  }
}

// The writer re-creates an accepted image; the reader reads it back the same.
void check_round_trip(const GgufContents& c) {
  if (c.alignment() > 4096) return;  // the writer would pad to it: too large for a fuzzer
  std::vector<GgufTensorData> tensors;
  for (const GgufTensor& t : c.tensors()) {
    GgufTensorData d{t.name, t.type, t.shape, {}};
    if (t.nbytes) d.bytes.assign(t.data, t.data + t.nbytes);
    tensors.push_back(std::move(d));
  }
  const std::string image = gguf_bytes(c.metadata().entries(), tensors);
  const GgufContents back =
      parse_gguf(reinterpret_cast<const std::byte*>(image.data()), image.size(), "round-trip.gguf");
  check_same(c, back, "round trip");
  FUZZ_CHECK(back.alignment() == c.alignment(), "alignment");
}

void check_file_agrees(const std::string& input, const GgufContents& mem) {
  static const std::filesystem::path path = fuzz::scratch_dir() / "model.gguf";
  test::write_file(path, input);
  FUZZ_CHECK(std::filesystem::file_size(path) == input.size(), "cannot write " + path.string());
  const auto file = GgufFile::open(path);
  check_same(mem, *file, "file reader");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = fuzz::as_string(data, size);
  std::vector<std::byte> image(input.size());
  if (!input.empty()) std::memcpy(image.data(), input.data(), input.size());
  GgufContents contents;
  try {
    contents = parse_gguf(image.data(), image.size(), "fuzz.gguf");
  } catch (const Error&) {
    return 0;
  }
  FUZZ_CHECK(contents.version() == 2 || contents.version() == 3, "version");
  FUZZ_CHECK(contents.data_offset() % contents.alignment() == 0, "data offset");
  exercise_getters(contents.metadata());
  for (const GgufTensor& t : contents.tensors()) {
    FUZZ_CHECK(contents.find(t.name) == &t, t.name);
    check_tensor(t, image.data(), image.data() + image.size());
  }
  check_round_trip(contents);
  check_file_agrees(input, contents);
  return 0;
}
