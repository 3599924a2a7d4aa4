#include "roofline.h"

namespace dapx::bench {

double prefill_flops(const ModelConfig& c, int64_t n) {
  const double d = c.head_dim, h = c.hidden_size;
  const double per_layer_params =
      h * d * (c.num_heads * 2 + c.num_kv_heads * 2) + 3.0 * h * c.intermediate_size;
  const double linear = 2.0 * per_layer_params * c.num_layers * n + 2.0 * h * c.vocab_size;
  const double attention = 4.0 * c.num_heads * d * (double(n) * (n + 1) / 2) * c.num_layers;
  return linear + attention;
}

}  // namespace dapx::bench
