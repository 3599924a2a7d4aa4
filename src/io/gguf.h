#pragma once
// GGUF reader (versions 2 and 3, little-endian, memory-mapped) and writer. No LibTorch here:
// tensors are raw views into the mapping, decoded with io/gguf_quant.h.
//
// A GGUF file is: "GGUF" | uint32 version | uint64 tensor count | uint64 metadata count |
// metadata (key string, uint32 value type, value) | tensor infos (name string, uint32 n_dims,
// uint64 dims[n_dims] innermost first, uint32 ggml type, uint64 offset) | padding to
// `general.alignment` (default 32) | tensor data, each tensor at its offset from the start of the
// data section (a multiple of the alignment). Strings are uint64 length + bytes.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf_quant.h"

namespace dapx {

// Metadata value types; the numeric values are the file's.
enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
// "uint8", "int32", "float32", "bool", "string", "array", ...
std::string gguf_value_type_name(GgufValueType type);

// One metadata value. A scalar holds exactly one element, an array any number (arrays of arrays
// are not supported). Elements are stored by kind: unsigned integers and bools in `uints`,
// signed integers in `ints`, float32/float64 in `floats` (a float32 converts to double and
// back exactly), strings in `strings`.
struct GgufValue {
  GgufValueType type = GgufValueType::U32;
  GgufValueType element_type = GgufValueType::U32;  // == type for scalars
  std::vector<uint64_t> uints;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;

  bool is_array() const { return type == GgufValueType::Array; }
  size_t size() const;            // number of elements (1 for a scalar)
  std::string type_name() const;  // "uint32", "array of string"

  static GgufValue u8(uint8_t v);
  static GgufValue i8(int8_t v);
  static GgufValue u16(uint16_t v);
  static GgufValue i16(int16_t v);
  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue i64(int64_t v);
  static GgufValue f32(float v);
  static GgufValue f64(double v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  // Arrays. `element_type` must be of the matching kind; values must fit it (dapx::Error).
  static GgufValue uint_array(GgufValueType element_type, std::vector<uint64_t> v);  // also Bool
  static GgufValue int_array(GgufValueType element_type, std::vector<int64_t> v);
  static GgufValue float_array(GgufValueType element_type, std::vector<double> v);
  static GgufValue string_array(std::vector<std::string> v);
};
bool operator==(const GgufValue& a, const GgufValue& b);
inline bool operator!=(const GgufValue& a, const GgufValue& b) { return !(a == b); }

using GgufMetadataList = std::vector<std::pair<std::string, GgufValue>>;

// The metadata of one file, in file order, with typed getters. Every getter error names the
// source file: "GGUF file 'F': missing key 'K'", "... key 'K' has type string, expected uint32".
class GgufMetadata {
 public:
  GgufMetadata() = default;
  // Throws dapx::Error on a repeated key.
  GgufMetadata(GgufMetadataList entries, std::string source);

  const GgufMetadataList& entries() const { return entries_; }
  const std::string& source() const { return source_; }
  bool has(const std::string& key) const { return index_.count(key) != 0; }
  const GgufValue* find(const std::string& key) const;  // nullptr when absent
  const GgufValue& get(const std::string& key) const;   // throws when absent

  std::string get_string(const std::string& key) const;
  // Any integer type whose value fits the result ("key 'K' has value V, out of range for
  // uint32"); llama.cpp writes most counts as uint32, other writers as uint64 or int32.
  uint32_t get_u32(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // float32 or float64
  bool get_bool(const std::string& key) const;
  const std::vector<std::string>& get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;   // any integer elements
  std::vector<double> get_float_array(const std::string& key) const;  // float32/64 elements

 private:
  [[noreturn]] void fail(const std::string& what) const;
  GgufMetadataList entries_;
  std::map<std::string, size_t> index_;
  std::string source_;
};

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  // Row-major shape, outermost first, like a safetensors/PyTorch shape: the file's dims
  // reversed. shape.back() is the row length (the file's dims[0]).
  std::vector<int64_t> shape;
  uint64_t offset = 0;              // from the start of the data section
  const std::byte* data = nullptr;  // points into the image (null when nbytes == 0)
  size_t nbytes = 0;

  int64_t numel() const;
  int64_t row_length() const { return shape.back(); }
  int64_t num_rows() const;  // numel / row_length (0 when empty)
};

// A parsed GGUF image: header, metadata, tensor infos, and views into the data section.
class GgufContents {
 public:
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // of the data section, in the file
  const GgufMetadata& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }  // in file order
  const GgufTensor* find(const std::string& name) const;               // nullptr when absent
  // Throws dapx::Error "GGUF file 'F': missing tensor 'NAME'".
  const GgufTensor& get(const std::string& name) const;

 private:
  friend GgufContents parse_gguf(const std::byte*, size_t, const std::filesystem::path&);
  uint32_t version_ = 3;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  GgufMetadata metadata_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> index_;
};

// Parses and validates a GGUF image in memory (a fuzzer's input, a test's bytes); the views
// point into `data`, which must outlive them. `source` names the image in errors. Checks: magic,
// version 2 or 3, every count, length, offset and size against the image (overflow-safe), value
// types, bools 0/1, repeated keys and tensor names, general.alignment (uint32, power of two),
// 1 to 4 dims, known tensor types, row length a multiple of the type's block size, tensor
// offsets aligned and inside the data section, no overlapping tensors.
GgufContents parse_gguf(const std::byte* data, size_t size, const std::filesystem::path& source);

// One .gguf file, mapped read-only for the object's lifetime, validated on open.
class GgufFile : public GgufContents {
 public:
  static std::unique_ptr<GgufFile> open(const std::filesystem::path& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  size_t file_size() const { return size_; }

 private:
  GgufFile() = default;
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t size_ = 0;
};

// Decodes `count` rows of `t` starting at row `first` into out[count * row_length]; throws
// dapx::Error for a type dequantize_row() does not decode or rows out of range.
void dequantize_rows(const GgufTensor& t, int64_t first, int64_t count, float* out);
// The whole tensor as float32, row-major.
std::vector<float> gguf_tensor_to_float(const GgufTensor& t);

// ---- writer ----

// A tensor to write: row-major shape (as GgufTensor::shape), bytes already in `type`'s layout.
struct GgufTensorSpec {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> shape;
};
struct GgufTensorData {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};

// Writes a version-3 GGUF file: the metadata in the given order, the tensors in the given order,
// each padded to the alignment (general.alignment when the metadata has it: uint32, a power of
// two; else 32). Throws dapx::Error on repeated keys or names, an empty name, 0 or more than 4
// dims, a row length that is not a multiple of the block size, or bytes of the wrong size.
void write_gguf(const std::filesystem::path& path, const GgufMetadataList& metadata,
                const std::vector<GgufTensorData>& tensors);
// The same file as bytes (tests, fuzz seeds).
std::string gguf_bytes(const GgufMetadataList& metadata,
                       const std::vector<GgufTensorData>& tensors);
// Streaming writer: the header comes from `specs`, then `produce` is called once per tensor, in
// order, to fill `out` with its bytes, which are written at once (one tensor in memory).
void write_gguf_streamed(
    const std::filesystem::path& path, const GgufMetadataList& metadata,
    const std::vector<GgufTensorSpec>& specs,
    const std::function<void(const GgufTensorSpec& spec, std::vector<std::byte>& out)>& produce);

}  // namespace dapx
