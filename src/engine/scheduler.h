#pragma once
// Continuous batching: many generations share the model, one engine step at a time. Each step
// is one batched decode over every running sequence (the weights are read once for all of
// them) and, while requests wait, the prefills of the next ones up to a token budget (each a
// method's whole prefill: draft stage, prompt stage, target prefill, KV stage). Admission is
// bounded by a KV memory pool that counts the bytes each request will really hold (its compressed
// cache plus its generated tokens; the prefill's transient peak while it prefills), so compressed
// requests let more sequences in. A sequence's tokens never depend on its batch-mates.
//
// A long prefill does not stall the streams: at its pace points (between layers and chunks),
// once it has run prefill_slice_s, everyone running takes a decode step, then it goes on.
//
// Requests are admitted in arrival order (a large request at the head waits for room and
// the ones behind it wait too: no request starves). The scheduler's thread runs every
// engine step; callers wait on their Ticket, which never blocks the step.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/generator.h"
#include "util/error.h"

namespace dapx {

struct SchedulerOptions {
  int parallel = 16;      // running sequences at most (the pool usually binds first)
  int64_t kv_memory = 0;  // KV bytes of all running sequences; 0: default_kv_memory()
  int max_waiting = 64;   // admitted but not yet running; beyond it submit() throws
  // Prompt tokens prefilled between two decode steps (at least one whole request): many short
  // prompts start together, a long one runs alone.
  int64_t prefill_tokens = 512;
  // A long prefill runs at most this long before the running sequences get a decode step
  // (it pauses at its next pace point, model/pace.h): streams keep flowing while a long
  // prompt is admitted.
  double prefill_slice_s = 0.25;
  // The engine (every prefill and decode step) runs on a thread of the scheduler's own, or on
  // the thread that calls run_here(). A server runs it on the thread that loaded the model:
  // the process then has one thread running OpenMP regions, which is what keeps libgomp's
  // threads spinning between the hundred short regions of a decode step instead of sleeping.
  bool own_thread = true;
  // Every request the pool admits is prefilled before the next decode step (prefill_tokens
  // and prefill_slice_s unbounded): a benchmark's setting (`dapx bench-serve --capacity`), so
  // that no request ends before the pool has admitted all it can.
  static SchedulerOptions admit_before_decode(SchedulerOptions o);
};

// A quarter of the machine's physical memory (at least 256 MiB).
int64_t default_kv_memory();

// A request's planned KV bytes (methods/kv_plan.h).
struct KVReservation {
  int64_t bytes = 0;       // while decoding
  int64_t peak_bytes = 0;  // while prefilling
};

// submit() when the waiting line is full (a server answers 503 and asks to retry).
class QueueFull : public Error {
 public:
  using Error::Error;
};

// One submitted generation, shared by the scheduler and the caller.
class Ticket {
 public:
  // The sequence ends before its next token (finish_reason "cancelled"); the others go on.
  void cancel() { cancel_ = true; }
  bool cancelled() const { return cancel_; }
  // Blocks until text arrives or the generation ends. Returns false once it has ended and
  // every piece was taken.
  bool next_text(std::string& piece);
  // As next_text, waiting at most `seconds`: kText (piece set), kEnded, or kTimeout.
  enum class Wait { kText, kEnded, kTimeout };
  Wait next_text_for(std::string& piece, double seconds);
  // Waits at most `seconds` for the end; true once it has ended.
  bool wait_end_for(double seconds);
  // Blocks until the end: the result, or the generation's error rethrown.
  GenerationResult result();

 private:
  friend class Scheduler;
  void push_text(const std::string& piece);
  void complete(GenerationResult r);
  void fail(std::exception_ptr e);

  std::atomic<bool> cancel_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pieces_;
  std::optional<GenerationResult> result_;
  std::exception_ptr error_;
  bool ended_ = false;
};

struct SchedulerStats {
  int running = 0, waiting = 0;
  int running_peak = 0;  // most sequences running at once
  int64_t pool_used = 0, pool_limit = 0, pool_peak = 0;
  int64_t steps = 0;
  double step_seconds = 0;             // all decode steps together
  std::map<int, int64_t> batch_sizes;  // decode steps by batch size
  // The request at the head of the line waits for KV memory (none is being admitted and its
  // prefill peak does not fit what the running ones leave).
  bool pool_full = false;
  int64_t pool_waits = 0;  // requests that waited at the head of the line for KV memory
};

class Scheduler {
 public:
  Scheduler(const LoadedModel& model, SchedulerOptions options);
  ~Scheduler();  // stops: cancels what runs, fails what waits
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a generation. Throws dapx::Error when it can never fit the pool (naming
  // --kv-memory), QueueFull when the waiting line is full. The method must outlive the
  // ticket's end (the scheduler keeps it until then). `on_text` (optional) sees each piece
  // on the engine thread as it is made, before the ticket does; it must not block.
  std::shared_ptr<Ticket> submit(std::unique_ptr<Method> method, std::vector<int> prompt,
                                 GenerationParams params, KVReservation kv,
                                 TextCallback on_text = nullptr);
  // Cancels every sequence (running and waiting; their finish_reason is "cancelled") and
  // stops the engine thread once they have ended. Idempotent.
  void stop();
  // Runs the engine on the calling thread until stop() has ended every sequence (only when
  // options.own_thread is false).
  void run_here();
  SchedulerStats stats() const;
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Entry;
  void run();
  // Moves waiting entries to the prefill line while the pool and `parallel` allow.
  void admit_locked();
  void prefill_one(std::unique_ptr<Entry> e);
  void decode_step();
  void end(std::unique_ptr<Entry> e, std::exception_ptr error = nullptr);

  const LoadedModel& model_;
  SchedulerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Entry>> waiting_;   // submitted, not yet admitted
  std::deque<std::unique_ptr<Entry>> admitted_;  // pool reserved, prefill pending
  std::vector<std::unique_ptr<Entry>> running_;  // prefilled, decoding (engine thread only)
  int running_count_ = 0, running_peak_ = 0;
  int64_t pool_used_ = 0, pool_peak_ = 0, pool_waits_ = 0;
  int64_t steps_ = 0;
  double step_seconds_ = 0;
  std::map<int, int64_t> batch_sizes_;
  bool stopping_ = false;
  int threads_ = 1;     // LibTorch/OpenMP threads of the engine thread
  std::thread thread_;  // the engine's, when options_.own_thread
};

}  // namespace dapx
