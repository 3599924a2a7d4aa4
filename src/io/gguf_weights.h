#pragma once
// The weights of a GGUF file as a WeightStore under Hugging Face tensor names, so the
// transformer loads them as it loads an HF directory's. F32, F16 and BF16 tensors are read in
// place from the mapping; quantised ones (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, ...) are dequantised at
// load into `dequant_to` (F32: exact for every type; BF16: rounded to nearest even); the rows of
// a `llama` file's q/k projections are put back in HF order (a copy). With `int8_weights`
// (--weights int8) the quantised matrices the int8 GEMV reads (the projections and the LM
// head) become int8 instead (WeightStore::int8_matrix): Q8_0 as it is (its int8 values and f32
// scales per 32 columns), other types dequantised a row at a time and quantised to dapx's int8
// rows (scales per 64 columns) without a dequantised copy of the matrix.
#include <memory>

#include "io/gguf.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace dapx {

// Throws dapx::Error naming the file and the tensor for a tensor that is not part of the
// model's architecture or a type dapx does not decode.
WeightStore gguf_weight_store(std::shared_ptr<const GgufFile> file, const ModelConfig& config,
                              DType dequant_to, bool int8_weights = false);

}  // namespace dapx
