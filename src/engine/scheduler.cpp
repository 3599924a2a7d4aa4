#include "engine/scheduler.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "engine/sequence.h"
#include "engine/tensor_memory.h"
#include "model/pace.h"
#include "util/stopwatch.h"

namespace dapx {

int64_t default_kv_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  const int64_t physical = pages > 0 && page > 0 ? int64_t{pages} * page : int64_t{4} << 30;
  return std::max<int64_t>(physical / 4, int64_t{256} << 20);
}

SchedulerOptions SchedulerOptions::admit_before_decode(SchedulerOptions o) {
  o.prefill_tokens = std::numeric_limits<int64_t>::max();
  o.prefill_slice_s = std::numeric_limits<double>::infinity();
  return o;
}

bool Ticket::next_text(std::string& piece) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !pieces_.empty() || ended_; });
  if (pieces_.empty()) return false;
  piece = std::move(pieces_.front());
  pieces_.pop_front();
  return true;
}

Ticket::Wait Ticket::next_text_for(std::string& piece, double seconds) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::duration<double>(seconds),
                    [&] { return !pieces_.empty() || ended_; }))
    return Wait::kTimeout;
  if (pieces_.empty()) return Wait::kEnded;
  piece = std::move(pieces_.front());
  pieces_.pop_front();
  return Wait::kText;
}

bool Ticket::wait_end_for(double seconds) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return ended_; });
}

GenerationResult Ticket::result() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return ended_; });
  if (error_) std::rethrow_exception(error_);
  return *result_;
}

void Ticket::push_text(const std::string& piece) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pieces_.push_back(piece);
  }
  cv_.notify_all();
}

void Ticket::complete(GenerationResult r) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    result_ = std::move(r);
    ended_ = true;
  }
  cv_.notify_all();
}

void Ticket::fail(std::exception_ptr e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::move(e);
    ended_ = true;
  }
  cv_.notify_all();
}

struct Scheduler::Entry {
  std::unique_ptr<Method> method;
  std::shared_ptr<Ticket> ticket;
  std::unique_ptr<Sequence> seq;
  KVReservation kv;
  int64_t reserved = 0;     // bytes this entry holds in the pool now
  bool running = false;     // counted in running_count_
  bool waited = false;      // counted in pool_waits_
  int64_t tensor_peak = 0;  // the prefill's CPU tensor high-water mark (cache included)
};

Scheduler::Scheduler(const LoadedModel& model, SchedulerOptions options)
    : model_(model), options_(options) {
  if (options_.parallel < 1) throw Error("--parallel must be >= 1");
  if (options_.max_waiting < 1) throw Error("the waiting line must hold at least 1 request");
  if (options_.kv_memory < 0) throw Error("--kv-memory must be positive");
  if (options_.prefill_tokens < 1) throw Error("--prefill-chunk must be >= 1");
  if (options_.kv_memory == 0) options_.kv_memory = default_kv_memory();
  threads_ = at::get_num_threads();  // the caller's setting (--threads), for the engine thread
  if (options_.own_thread) thread_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::run_here() {
  if (options_.own_thread) throw Error("run_here: this scheduler runs on a thread of its own");
  run();
}

std::shared_ptr<Ticket> Scheduler::submit(std::unique_ptr<Method> method, std::vector<int> prompt,
                                          GenerationParams params, KVReservation kv,
                                          TextCallback on_text) {
  if (kv.peak_bytes > options_.kv_memory)
    throw Error("the request needs " + std::to_string(kv.peak_bytes) + " bytes of KV memory (" +
                std::to_string(prompt.size()) + " prompt tokens, " +
                std::to_string(params.max_new_tokens) + " new tokens, method " + method->name() +
                "); the pool (--kv-memory) holds " + std::to_string(options_.kv_memory) +
                ": shorten the prompt, compress more, or raise --kv-memory");
  auto e = std::make_unique<Entry>();
  e->method = std::move(method);
  e->ticket = std::make_shared<Ticket>();
  e->kv = kv;
  params.cancel = &e->ticket->cancel_;
  Ticket* t = e->ticket.get();  // lives as long as the entry, which owns the sequence
  e->seq = std::make_unique<Sequence>(model_, *e->method, std::move(prompt), std::move(params),
                                      [t, on_text](const std::string& piece) {
                                        if (piece.empty()) return;
                                        if (on_text) on_text(piece);
                                        t->push_text(piece);
                                      });
  std::shared_ptr<Ticket> ticket = e->ticket;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw Error("the server is shutting down");
    if (static_cast<int>(waiting_.size()) >= options_.max_waiting)
      throw QueueFull("the waiting line is full (" + std::to_string(options_.max_waiting) +
                      " requests); retry later");
    waiting_.push_back(std::move(e));
  }
  cv_.notify_all();
  return ticket;
}

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SchedulerStats s;
  s.running = running_count_;
  s.running_peak = running_peak_;
  s.pool_waits = pool_waits_;
  s.waiting = static_cast<int>(waiting_.size() + admitted_.size());
  s.pool_used = pool_used_;
  s.pool_limit = options_.kv_memory;
  s.pool_peak = pool_peak_;
  s.steps = steps_;
  s.step_seconds = step_seconds_;
  s.batch_sizes = batch_sizes_;
  s.pool_full = admitted_.empty() && !waiting_.empty() &&
                pool_used_ + waiting_.front()->kv.peak_bytes > options_.kv_memory;
  return s;
}

void Scheduler::admit_locked() {
  // One request at a time holds its prefill peak: the next is admitted once it has prefilled.
  if (!admitted_.empty() || waiting_.empty()) return;
  if (running_count_ >= options_.parallel) return;
  Entry& e = *waiting_.front();
  if (pool_used_ + e.kv.peak_bytes > options_.kv_memory) {
    if (!e.waited) ++pool_waits_;
    e.waited = true;
    return;
  }
  e.reserved = e.kv.peak_bytes;
  pool_used_ += e.reserved;
  pool_peak_ = std::max(pool_peak_, pool_used_);
  admitted_.push_back(std::move(waiting_.front()));
  waiting_.pop_front();
}

void Scheduler::run() {
  at::set_num_threads(threads_);  // a new thread starts with OpenMP's default
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {  // a submit or a finished sequence may let the next one in
        admit_locked();
        return stopping_ || !running_.empty() || !admitted_.empty();
      });
      if (stopping_) {  // every sequence ends at its next token; the waiting ones at once
        for (auto& e : running_) e->ticket->cancel();
        for (auto& e : admitted_) e->ticket->cancel();
        for (auto& e : waiting_) {
          e->ticket->cancel();
          admitted_.push_back(std::move(e));
        }
        waiting_.clear();
        if (running_.empty() && admitted_.empty()) return;
      }
    }
    // Prefills, up to prefill_tokens prompt tokens per step (at least one request), then one
    // decode step for everyone running: short prompts all start within a step or two.
    int64_t prefilled = 0;
    while (prefilled < options_.prefill_tokens) {
      std::unique_ptr<Entry> next;
      {
        std::lock_guard<std::mutex> lock(mu_);
        admit_locked();
        if (admitted_.empty()) break;
        next = std::move(admitted_.front());
        admitted_.pop_front();
      }
      prefilled += static_cast<int64_t>(next->seq->prompt().size());
      prefill_one(std::move(next));
    }
    if (!running_.empty()) decode_step();
  }
}

void Scheduler::prefill_one(std::unique_ptr<Entry> e) {
  if (e->ticket->cancelled()) return end(std::move(e));
  // The prefill runs here, on the engine thread. At its pace points (between layers and chunks)
  // the running sequences take a decode step once it has run prefill_slice_s, then it goes on:
  // streams keep flowing while a long prompt is admitted. Everything computes on this one
  // thread: a second thread running OpenMP regions would make libgomp stop spinning between
  // regions (it then manages more threads than CPUs), and every region of a decode step would
  // pay a sleep and a wake-up (measured: a fifth of a step on 2 cores).
  std::exception_ptr error;
  try {
    Stopwatch slice;
    const TensorPeakScope tensors;  // this request's allocations
    const PaceScope pace([&] {
      if (running_.empty() || slice.seconds() < options_.prefill_slice_s) return;
      const PaceScope quiet(nullptr);  // the step itself has no pace points to yield at
      const TensorPeakScope step;      // nor are its tensors this request's
      decode_step();
      slice = Stopwatch();
    });
    e->seq->prefill();
    e->tensor_peak = tensors.peak_bytes();
  } catch (...) {
    error = std::current_exception();
  }
  if (error) return end(std::move(e), error);
  {  // the plan was an estimate: the pool holds what the cache really holds from now on
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t actual = e->seq->kv_allocated_bytes();
    pool_used_ += actual - e->reserved;
    e->reserved = actual;
  }
  bool more = false;
  try {
    more = e->seq->sample();
  } catch (...) {
    return end(std::move(e), std::current_exception());
  }
  if (!more) return end(std::move(e));
  std::lock_guard<std::mutex> lock(mu_);
  e->running = true;
  running_.push_back(std::move(e));
  running_peak_ = std::max(running_peak_, ++running_count_);
}

void Scheduler::decode_step() {
  const int count = static_cast<int>(running_.size());
  std::vector<DecodeRow> rows;
  rows.reserve(count);
  for (auto& e : running_) rows.push_back(e->seq->next_row());
  const Stopwatch clock;
  at::Tensor logits;
  try {
    const Transformer& t = model_.transformer;
    if (t.options().device.is_cpu()) {
      logits = t.decode_batch(rows.data(), count);
    } else {  // the GPU takes its token-major path, one sequence after another
      std::vector<at::Tensor> each;
      for (const DecodeRow& r : rows) each.push_back(t.forward({r.token}, r.pos, *r.cache));
      logits = at::stack(each);
    }
  } catch (...) {  // a failed step fails every sequence in it; the server goes on
    const std::exception_ptr error = std::current_exception();
    std::vector<std::unique_ptr<Entry>> failed = std::move(running_);
    running_.clear();
    for (auto& e : failed) end(std::move(e), error);
    return;
  }
  const double seconds = clock.seconds();
  std::vector<std::unique_ptr<Entry>> still;
  for (int i = 0; i < count; ++i) {
    std::unique_ptr<Entry>& e = running_[i];
    bool more = false;
    try {
      e->seq->feed(logits.select(0, i));
      more = e->seq->sample();
    } catch (...) {
      end(std::move(e), std::current_exception());
      continue;
    }
    if (more)
      still.push_back(std::move(e));
    else
      end(std::move(e));
  }
  running_ = std::move(still);
  std::lock_guard<std::mutex> lock(mu_);
  ++steps_;
  step_seconds_ += seconds;
  ++batch_sizes_[count];
}

void Scheduler::end(std::unique_ptr<Entry> e, std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pool_used_ -= e->reserved;
    e->reserved = 0;
    if (e->running) --running_count_;
  }
  if (error) {
    e->ticket->fail(error);
  } else {
    GenerationResult r;
    try {
      r = e->seq->finish();
      r.stats.tensor_peak_bytes = e->tensor_peak;
    } catch (...) {
      e->ticket->fail(std::current_exception());
      e.reset();
      return;
    }
    e->ticket->complete(std::move(r));
  }
  e.reset();  // frees the cache before the pool admits another
  cv_.notify_all();
}

}  // namespace dapx
