#pragma once
// The weights of a GGUF file as a WeightStore under Hugging Face tensor names, so the
// transformer loads them as it loads an HF directory's. F32, F16 and BF16 tensors are read in
// place from the mapping; quantised ones (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, ...) are dequantised at
// load into `dequant_to` (F32: exact for every type; BF16: rounded to nearest even); the rows of
// a `llama` file's q/k projections are put back in HF order (a copy). With `q8_0_as_int8`
// (--weights int8), the Q8_0 projection matrices are kept as they are instead, as int8 values
// and their f32 block scales (WeightStore::int8_matrix), which the int8 GEMV reads exactly.
#include <memory>

#include "io/gguf.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace dapx {

// Throws dapx::Error naming the file and the tensor for a tensor that is not part of the
// model's architecture or a type dapx does not decode.
WeightStore gguf_weight_store(std::shared_ptr<const GgufFile> file, const ModelConfig& config,
                              DType dequant_to, bool q8_0_as_int8 = false);

}  // namespace dapx
