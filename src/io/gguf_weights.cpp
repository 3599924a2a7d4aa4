#include "io/gguf_weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "io/gguf_model.h"
#include "util/bf16.h"
#include "util/error.h"
#include "util/int8_rows.h"

namespace dapx {
namespace {

// What the store's views point into: the mapping, and the tensors copied at load.
struct Holder {
  std::shared_ptr<const GgufFile> file;
  std::vector<std::vector<std::byte>> copies;
};

bool native_dtype(GgmlType t, DType& out) {
  switch (t) {
    case GgmlType::F32:
      out = DType::F32;
      return true;
    case GgmlType::F16:
      out = DType::F16;
      return true;
    case GgmlType::BF16:
      out = DType::BF16;
      return true;
    default:
      return false;
  }
}

// The whole tensor in `dtype`, dequantised a row at a time.
std::vector<std::byte> dequantised(const GgufTensor& t, DType dtype) {
  const int64_t rows = t.num_rows(), cols = t.row_length();
  std::vector<std::byte> out(static_cast<size_t>(t.numel()) * dtype_size(dtype));
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_rows(t, r, 1, row.data());
    if (dtype == DType::F32) {
      std::memcpy(out.data() + r * cols * 4, row.data(), static_cast<size_t>(cols) * 4);
    } else {
      auto* dst = reinterpret_cast<uint16_t*>(out.data()) + r * cols;
      for (int64_t c = 0; c < cols; ++c) dst[c] = f32_to_bf16(row[static_cast<size_t>(c)]);
    }
  }
  return out;
}

// Drops the resident pages of a tensor of the read-only file mapping that was copied (whole
// pages inside it only): reading it again would still be correct, the pages come back from
// the file. A failure only means the memory stays resident.
void drop_pages(const GgufTensor& t) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.data), end = begin + t.nbytes;
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (t.data && last > first)
    ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace

namespace {

// dapx's own int8 rows: one scale per 64 columns (model/gemv.h's kInt8Block; io does not
// include the model layer).
constexpr int64_t kInt8Cols = 64;

// A quantised matrix as int8 values and f32 scales per `block` columns, rows in HF order
// (`heads` > 0: a llama q/k projection), made a row at a time by `row_to_int8(src row, q, scales)`
// and held by `holder`.
template <typename RowToInt8>
Int8Matrix int8_matrix(const GgufTensor& t, int64_t heads, int64_t block, Holder& holder,
                       RowToInt8 row_to_int8) {
  const int64_t rows = t.num_rows(), cols = t.row_length(), blocks = (cols + block - 1) / block;
  const size_t row_bytes = ggml_row_bytes(t.type, cols);
  std::vector<std::byte> hf_order;
  const std::byte* src = t.data;
  if (heads > 0) {
    hf_order.resize(t.nbytes);
    permute_llama_qk_rows(t.data, hf_order.data(), rows, row_bytes, heads, true);
    src = hf_order.data();
  }
  std::vector<std::byte> q(static_cast<size_t>(rows * cols)),
      scales(static_cast<size_t>(rows * blocks) * sizeof(float));
  for (int64_t r = 0; r < rows; ++r)
    row_to_int8(src + r * row_bytes, reinterpret_cast<int8_t*>(q.data()) + r * cols,
                reinterpret_cast<float*>(scales.data()) + r * blocks);
  Int8Matrix m;
  m.shape = t.shape;
  m.block = block;
  holder.copies.push_back(std::move(q));
  m.q = reinterpret_cast<const int8_t*>(holder.copies.back().data());
  holder.copies.push_back(std::move(scales));
  m.scales = reinterpret_cast<const float*>(holder.copies.back().data());
  return m;
}

// Q8_0 as it is: its int8 values and its scales per 32 columns. Another type: each row
// dequantised (and rounded to `dtype`, as the view would hold it), then quantised to dapx's
// int8 rows, without keeping the dequantised matrix (Linear would quantise the same values the
// same way, but the copy would stay).
Int8Matrix int8_form(const GgufTensor& t, int64_t heads, DType dtype, Holder& holder) {
  const int64_t cols = t.row_length();
  if (t.type == GgmlType::Q8_0)
    return int8_matrix(t, heads, 32, holder, [&](const std::byte* src, int8_t* q, float* sc) {
      split_row_q8_0(src, cols, q, sc);
    });
  std::vector<float> row(static_cast<size_t>(cols));
  return int8_matrix(t, heads, kInt8Cols, holder, [&](const std::byte* src, int8_t* q, float* sc) {
    dequantize_row(t.type, src, row.data(), cols);
    if (dtype == DType::BF16)
      for (float& v : row) v = bf16_to_f32(f32_to_bf16(v));
    quantize_int8_rows(row.data(), 1, cols, kInt8Cols, q, sc);
  });
}

bool is_projection(const std::string& hf_name) {
  const std::string suffix = "_proj.weight";
  return hf_name.size() > suffix.size() &&
         hf_name.compare(hf_name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

WeightStore gguf_weight_store(std::shared_ptr<const GgufFile> file, const ModelConfig& config,
                              DType dequant_to, bool int8_weights) {
  if (dequant_to != DType::F32 && dequant_to != DType::BF16)
    throw Error("GGUF weights dequantise to F32 or BF16, not " + dtype_name(dequant_to));
  auto holder = std::make_shared<Holder>();
  holder->file = file;
  std::vector<TensorView> views;
  std::set<std::string> mapped;
  std::map<std::string, Int8Matrix> int8;
  const std::string where = "'" + file->path().string() + "'";
  for (const GgufTensor& t : file->tensors()) {
    if (t.name == "rope_freqs.weight") continue;  // llama3 RoPE scaling: read into the config
    const std::optional<std::string> hf = gguf_to_hf_tensor_name(t.name);
    if (!hf)
      throw Error("tensor '" + t.name + "' in " + where + " is not part of a " +
                  gguf_arch_name(config.arch) + " model that dapx reads");
    DType dtype;
    const bool in_place = native_dtype(t.type, dtype);
    if (!in_place) dtype = dequant_to;
    const int64_t heads = gguf_qk_permutation_heads(config, t.name);
    // The matrices the int8 GEMV reads: the projections and the LM head (a tied one is the
    // embedding table, which the lookup also reads dequantised: both forms are kept).
    const bool head = *hf == "lm_head.weight" ||
                      (config.tie_word_embeddings && *hf == "model.embed_tokens.weight");
    if (int8_weights && !in_place && t.shape.size() == 2 && (is_projection(*hf) || head)) {
      try {
        int8.emplace(head ? "lm_head.weight" : *hf, int8_form(t, heads, dequant_to, *holder));
      } catch (const Error& e) {
        throw Error("tensor '" + t.name + "' in " + where + ": " + e.what());
      }
      if (*hf != "model.embed_tokens.weight") {
        drop_pages(t);
        continue;
      }
    }
    TensorView v;
    v.name = *hf;
    v.dtype = dtype;
    v.shape = t.shape;
    v.nbytes = static_cast<size_t>(t.numel()) * dtype_size(dtype);
    if (in_place && heads == 0) {  // read from the mapping as it is
      v.data = t.data;
      mapped.insert(v.name);
      views.push_back(std::move(v));
      continue;
    }
    std::vector<std::byte> bytes;
    try {
      if (in_place)
        bytes.assign(t.data, t.data + t.nbytes);
      else
        bytes = dequantised(t, dtype);
    } catch (const Error& e) {
      throw Error("tensor '" + t.name + "' in " + where + ": " + e.what());
    }
    if (heads > 0) {  // HF row order
      std::vector<std::byte> hf_order(bytes.size());
      const bool vector = t.shape.size() == 1;  // a bias: its elements are the rows
      permute_llama_qk_rows(bytes.data(), hf_order.data(), vector ? t.shape[0] : t.num_rows(),
                            (vector ? 1 : static_cast<size_t>(t.row_length())) * dtype_size(dtype),
                            heads, true);
      bytes.swap(hf_order);
    }
    drop_pages(t);  // the copy is what is read from now on
    holder->copies.push_back(std::move(bytes));
    v.data = holder->copies.back().data();  // a vector's buffer stays put when the outer one grows
    views.push_back(std::move(v));
  }
  return WeightStore::from_views(file->path(), std::move(views), std::move(mapped),
                                 std::shared_ptr<const void>(holder, holder.get()),
                                 std::move(int8));
}

}  // namespace dapx
