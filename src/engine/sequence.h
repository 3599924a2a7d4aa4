#pragma once
// One generation between decode steps: the method's prefilled cache, the sampler, the stop
// strings and the statistics of a request. generate() drives one Sequence alone; the
// Scheduler drives many, each decode step batched over all of them. The order of the work is
// the same either way (prefill, then sample -> feed back until EOS, a stop string, the token
// limit or a cancellation), so a sequence's tokens never depend on its batch-mates.
#include <memory>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/stats.h"

namespace dapx {

class StopStreamer;

class Sequence {
 public:
  // Checks the prompt against the model's context (dapx::Error); runs nothing yet. `model`,
  // `method` and params.cancel must outlive the sequence.
  Sequence(const LoadedModel& model, Method& method, std::vector<int> prompt,
           GenerationParams params, TextCallback on_text = nullptr);
  ~Sequence();
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  // The method's prefill (draft stage, prompt stage, target prefill, KV stage); the cache is
  // then reserved for every token still to come.
  void prefill();
  // Samples the next token from the latest logits and streams its text. Returns true when
  // the token must be fed back (next_row()), false when the generation has ended (EOS, a stop
  // string, max_new_tokens, or the cancel flag seen before sampling).
  bool sample();
  // The decode input for the token sample() just chose: token, position, this cache.
  DecodeRow next_row();
  // The logits [vocab] the decode step computed for next_row().
  void feed(const at::Tensor& logits);
  // Ends the stream and fills the statistics; the result is moved out (call once).
  GenerationResult finish();

  bool prefilled() const { return prefilled_; }
  const std::vector<int>& prompt() const { return prompt_; }
  const GenerationParams& params() const { return params_; }
  // Bytes the cache holds now (its buffers, reserved slots included).
  int64_t kv_allocated_bytes() const;

 private:
  const LoadedModel& model_;
  Method& method_;
  std::vector<int> prompt_;
  GenerationParams params_;
  Sampler sampler_;
  std::unique_ptr<StopStreamer> streamer_;
  std::unique_ptr<PrefillResult> pre_;
  GenerationResult result_;
  at::Tensor logits_;
  int64_t pos_ = 0;
  int last_token_ = -1;
  int decode_steps_ = 0;
  bool prefilled_ = false;
  Stopwatch total_;  // from construction (a request's arrival): TTFT includes its wait
  Stopwatch decode_clock_;
};

}  // namespace dapx
