#include "engine/generator.h"

#include <algorithm>

#include "engine/gpu_memory.h"
#include "engine/heap.h"
#include "engine/sequence.h"
#include "engine/stats.h"
#include "engine/tensor_memory.h"
#include "util/error.h"

namespace dapx {

nlohmann::json GenerationStats::to_json() const {
  return {{"prompt_tokens", prompt_tokens},
          {"queue_s", queue_s},
          {"cached_tokens", cached_tokens},
          {"generated_tokens", generated_tokens},
          {"prefill_s", prefill_s},
          {"ttft_s", ttft_s},
          {"decode_s", decode_s},
          {"tpot_s", tpot_s},
          {"total_s", total_s},
          {"kv_bytes_full", kv_bytes_full},
          {"kv_bytes", kv_bytes},
          {"weight_bytes", weight_bytes},
          {"decode_weight_bytes", decode_weight_bytes},
          {"draft_weight_bytes", draft_weight_bytes},
          {"resident_weight_bytes", resident_weight_bytes},
          {"draft_resident_weight_bytes", draft_resident_weight_bytes},
          {"peak_rss_bytes", peak_rss_bytes},
          {"peak_rss_scope", peak_rss_scope},
          {"working_bytes", working_bytes()},
          {"tensor_peak_bytes", tensor_peak_bytes},
          {"gpu_peak_bytes", gpu_peak_bytes >= 0 ? nlohmann::json(gpu_peak_bytes) : nullptr},
          {"gpu_reserved_peak_bytes",
           gpu_reserved_peak_bytes >= 0 ? nlohmann::json(gpu_reserved_peak_bytes) : nullptr},
          {"finish_reason", finish_reason},
          {"kv_entries_per_layer", kv_entries_per_layer}};
}

void count_draft_weights(GenerationStats& stats, const Transformer& draft) {
  stats.draft_weight_bytes = draft.weight_bytes();
  stats.draft_resident_weight_bytes = resident_weight_bytes(draft);
}

GenerationResult generate(const LoadedModel& model, Method& method, const std::vector<int>& prompt,
                          const GenerationParams& params, const TextCallback& on_text) {
  Sequence seq(model, method, prompt, params, on_text);  // checks the prompt first
  const ReleaseFreeHeapOnExit release_heap;              // after this request's tensors are freed
  const bool per_request = reset_peak_rss();
  const c10::Device device = model.transformer.options().device;
  const bool gpu_measured = reset_gpu_peak(device);
  const TensorPeakScope tensors;
  seq.prefill();
  while (seq.sample()) {
    const DecodeRow row = seq.next_row();
    seq.feed(model.transformer.forward({row.token}, row.pos, *row.cache));
  }
  GenerationResult result = seq.finish();
  GenerationStats& st = result.stats;
  st.peak_rss_scope = per_request ? "request" : "process";
  st.tensor_peak_bytes = tensors.peak_bytes();
  st.resident_weight_bytes = resident_weight_bytes(model.transformer);
  if (gpu_measured) {
    const GpuPeak gpu = gpu_peak(device);
    st.gpu_peak_bytes = gpu.allocated_bytes;
    st.gpu_reserved_peak_bytes = gpu.reserved_bytes;
  }
  return result;
}

}  // namespace dapx
