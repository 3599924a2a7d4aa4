#pragma once
// safetensors reader (memory-mapped, validated header) and writer; sharded checkpoints via
// model.safetensors.index.json. No LibTorch here: tensors are raw views into the mapping.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace dapx {

enum class DType { F32, F16, BF16 };
size_t dtype_size(DType t);
std::string dtype_name(DType t);  // "F32", "F16", "BF16" (safetensors spelling)

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // points into the memory mapping
  size_t nbytes = 0;
  int64_t numel() const;
};

// One .safetensors file, mapped read-only for the object's lifetime. The header is validated
// on open: JSON well-formed, dtypes known, offsets inside the file, sizes == shape x dtype,
// no overlapping tensors. Errors name the file and the tensor.
class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  // The header's __metadata__ (string to string; empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorView* find(const std::string& name) const;  // nullptr when absent
  const std::filesystem::path& path() const { return path_; }
  size_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// The same validation on a safetensors image in memory (e.g. a fuzzer's input): the views point
// into `data`, which must outlive them. `source` names the image in errors.
std::map<std::string, TensorView> parse_safetensors(const std::byte* data, size_t size,
                                                    const std::filesystem::path& source);

// All weights of a model directory: model.safetensors, or the shards listed by
// model.safetensors.index.json ("weight_map").
// A matrix held as int8 with one f32 scale per row and block of `block` columns: a GGUF Q8_0
// tensor loaded for --weights int8 keeps its own quantisation (W = q * scale exactly).
struct Int8Matrix {
  std::vector<int64_t> shape;     // [rows, cols]
  const int8_t* q = nullptr;      // [rows, cols]
  const float* scales = nullptr;  // [rows, ceil(cols / block)]
  int64_t block = 0;
};

class WeightStore {
 public:
  static WeightStore open(const std::filesystem::path& model_dir);
  // A store over tensors held elsewhere (a GGUF file's, some converted at load): `holder` keeps
  // every view's bytes alive; views named in `mapped` point into a read-only file mapping (so
  // release() may drop their pages), the others into memory of their own (release() keeps it).
  // `int8`: matrices held as int8 instead of a view (their names are not in names()).
  static WeightStore from_views(std::filesystem::path source, std::vector<TensorView> views,
                                std::set<std::string> mapped, std::shared_ptr<const void> holder,
                                std::map<std::string, Int8Matrix> int8 = {});
  bool has(const std::string& name) const;
  // Throws dapx::Error "missing tensor 'NAME' in DIR" when absent.
  const TensorView& get(const std::string& name) const;
  // get() plus a shape check: "tensor 'NAME' has shape [a, b], expected [c, d]".
  const TensorView& get(const std::string& name, const std::vector<int64_t>& expected_shape) const;
  std::vector<std::string> names() const;
  // The int8 form of matrix `name`, or null when it has a view instead.
  const Int8Matrix* int8_matrix(const std::string& name) const;
  const std::map<std::string, Int8Matrix>& int8_matrices() const { return int8_; }
  size_t total_bytes() const;
  // Drops the resident pages of tensor `name` from memory (madvise DONTNEED on the whole pages
  // it covers): for a tensor that was copied (converted or quantised) and is no longer read
  // from the mapping. Reading it again is still correct: the pages come back from the file.
  void release(const std::string& name) const;

 private:
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
  // from_views(): the views, the names of those not in a file mapping, and their bytes' owner.
  std::vector<std::unique_ptr<TensorView>> views_;
  std::set<std::string> unmapped_;
  std::shared_ptr<const void> holder_;
  std::map<std::string, Int8Matrix> int8_;
};

// A tensor to write: bytes already in the target dtype, row-major.
struct TensorData {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};

// Writes one safetensors file (tensors sorted by name, 8-byte aligned header).
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Shape and dtype of a tensor to be written by the streaming writer.
struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

// Streaming writer: the header is computed from `specs` first, then `produce` is called once
// per tensor (in name order) to fill `out` with its bytes, which are written immediately, so
// only one tensor's bytes are in memory at a time. Throws when a produced size is wrong.
void write_safetensors_streamed(
    const std::filesystem::path& path, const std::vector<TensorSpec>& specs,
    const std::function<void(const TensorSpec& spec, std::vector<std::byte>& out)>& produce,
    const std::map<std::string, std::string>& metadata = {});

// Conversions used by the writer, the reader's tests and the naive reference.
uint16_t float_to_bf16(float f);  // round to nearest even
float bf16_to_float(uint16_t h);
uint16_t float_to_f16(float f);
float f16_to_float(uint16_t h);
// Reads any supported dtype into float32.
std::vector<float> to_float_vector(const TensorView& t);

}  // namespace dapx
