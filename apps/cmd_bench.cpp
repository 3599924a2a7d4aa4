// dapx bench: methods against full KV per prompt length. Each case (length x method x repeat)
// runs in its own child process, this binary's `generate --json`, so that its peak RSS is its
// own; figures are the median of the repeats, read against the machine's limits measured in the
// same run. Writes DIR/bench.json (with the machine, commit and command), bench.csv and
// bench.svg (gnuplot) and prints a table.
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "bench/bench_output.h"
#include "bench/bench_prompt.h"
#include "bench/bench_rows.h"
#include "bench/child_process.h"
#include "bench/cpu_info.h"
#include "bench/machine_limits.h"
#include "common.h"
#include "eval/runner.h"
#include "method_flags.h"
#include "methods/catalogue.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/stopwatch.h"

namespace dapx::cli {
namespace {

namespace fs = std::filesystem;

struct Flags {
  std::string model, draft, out;
  std::vector<int64_t> lengths = {4096, 8192, 16384};
  std::vector<std::string> methods = {"full", "snapkv", "laq", "speckv", "specpc", "speckv-pc"};
  int new_tokens = 64, repeats = 3, throughput = 0;
  int64_t budget = 0;  // 0: each method's default
  RuntimeFlags runtime;
};

// The runtime flags a child gets: every field of RuntimeFlags, one line each. A field added to
// RuntimeFlags is forwarded by adding its line here; check_runtime_forwarding() stops every run
// until that is done, so no child is silently benchmarked with a default.
std::vector<std::string> runtime_argv(const RuntimeFlags& f) {
  std::vector<std::string> argv;
  const auto add = [&](const char* flag, const std::string& value) {
    argv.insert(argv.end(), {flag, value});
  };
  add("--threads", std::to_string(f.threads));
  add("--dtype", f.dtype);
  add("--kv-dtype", f.kv_dtype);
  add("--weights", f.weights);
  add("--gemm", f.gemm);
  add("--prefill-chunk", std::to_string(f.prefill_chunk));
  add("--device", f.device);
  return argv;
}

void check_runtime_forwarding() {
  CLI::App probe;
  RuntimeFlags defaults;
  add_runtime_flags(probe, defaults);
  const std::vector<std::string> argv = runtime_argv(defaults);
  for (const CLI::Option* o : probe.get_options()) {
    if (o == probe.get_help_ptr()) continue;
    for (const std::string& name : o->get_lnames())
      if (std::find(argv.begin(), argv.end(), "--" + name) == argv.end())
        throw std::logic_error("dapx bench does not forward --" + name +
                               " to its children: add it to runtime_argv() in apps/cmd_bench.cpp");
  }
}

// One entry of --methods: a catalogue method and the parameters the benchmark gives it.
struct BenchMethod {
  std::string label;  // as given: "speckv", or "speckv:sparse" for a prefill variant
  std::string name;   // the catalogue's
  bool needs_draft = false;
  nlohmann::json params = nlohmann::json::object();  // by parameter name: budget, prefill
  nlohmann::json budget;                             // the budget in effect; null for full
};

// NAME or NAME:PREFILL; budgets go to each method's budget parameter (KV entries per head,
// prompt tokens for prompt methods, the KV budget of the cascade). Every method is built once
// here, so that a bad name, budget or parameter stops the run before its first case.
std::vector<BenchMethod> plan_methods(const Flags& f) {
  std::vector<BenchMethod> out;
  // Draft methods are only built with a draft: the (small) draft is loaded for the check and
  // freed at once, on the CPU, so that this process holds no GPU memory while children run.
  std::unique_ptr<LoadedModel> draft;
  for (const std::string& label : f.methods) {
    BenchMethod m;
    m.label = label;
    m.name = label.substr(0, label.find(':'));
    const MethodSpec* spec = nullptr;
    try {
      spec = &method_spec(m.name);
    } catch (const Error& e) {
      throw Error(std::string("--methods: ") + e.what());
    }
    m.needs_draft = spec->needs_draft;
    const std::string budget_param = spec->budget_param();
    if (f.budget > 0 && !budget_param.empty()) m.params[budget_param] = f.budget;
    if (!budget_param.empty())
      m.budget = f.budget > 0 ? nlohmann::json(f.budget) : spec->param(budget_param)->default_value;
    if (label.find(':') != std::string::npos) {
      const ParamSpec* prefill = spec->param("prefill");
      if (!prefill)
        throw Error("--methods " + label + ": method '" + m.name +
                    "' has no prefill choice; NAME:PREFILL is for the methods with a prefill "
                    "parameter (dapx methods lists them)");
      m.params["prefill"] = param_from_text(m.name, *prefill, label.substr(label.find(':') + 1));
    }
    if (m.needs_draft && f.draft.empty())
      throw Error("--methods " + label + ": method '" + m.name +
                  "' runs a draft model: pass --draft DIR (a model with the target's tokenizer)");
    if (m.needs_draft && !draft) draft = LoadedModel::load(f.draft, ComputeOptions{});
    MethodOptions options;
    options.draft = m.needs_draft ? &draft->transformer : nullptr;
    (void)make_method(m.name, m.params, options);
    for (const BenchMethod& other : out)
      if (other.label == label) throw Error("--methods lists '" + label + "' twice");
    out.push_back(m);
  }
  return out;
}

// One cell of the benchmark grid and what it measured.
struct Case {
  int64_t length = 0;
  const BenchMethod* method = nullptr;
  std::vector<std::string> argv;                  // the child's command
  nlohmann::json runs = nlohmann::json::array();  // run_figures objects or {"error": ...}
  nlohmann::json throughput;                      // --throughput's figures, when measured
};

std::vector<std::string> case_argv(const Flags& f, const BenchMethod& m, const fs::path& prompt) {
  std::vector<std::string> argv = {fs::read_symlink("/proc/self/exe").string(), "generate",
                                   "--ignore-eos", "--json"};
  const auto add = [&](const std::string& flag, const std::string& value) {
    argv.insert(argv.end(), {flag, value});
  };
  add("--model", f.model);
  add("--prompt-file", prompt.string());
  add("--method", m.name);
  add("--max-new-tokens", std::to_string(f.new_tokens));
  if (m.needs_draft) add("--draft", f.draft);
  for (const auto& p : m.params.items())
    add(flag_of(p.key()), p.value().is_string() ? p.value().get<std::string>() : p.value().dump());
  const std::vector<std::string> runtime = runtime_argv(f.runtime);
  argv.insert(argv.end(), runtime.begin(), runtime.end());
  return argv;
}

// Words that a shell would split or expand are single-quoted, so the line can be pasted back.
std::string shell_line(const std::vector<std::string>& argv) {
  static const char* const kPlain =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%";
  std::string line;
  for (const std::string& a : argv) {
    std::string word = a;
    if (a.empty() || a.find_first_not_of(kPlain) != std::string::npos) {
      word = "'";
      for (char c : a) word += c == '\'' ? std::string("'\\''") : std::string(1, c);
      word += "'";
    }
    line += (line.empty() ? "" : " ") + word;
  }
  return line;
}

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> argv;
  for (std::string a; std::getline(in, a, '\0');) argv.push_back(a);
  return argv;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The last line a failed child wrote to stderr ("dapx: error: ..."), or how it ended.
std::string child_failure(const bench::ProcessResult& r, const fs::path& err_path) {
  std::ifstream in(err_path);
  std::string line, last;
  while (std::getline(in, line))
    if (!trim(line).empty()) last = trim(line);
  if (r.signal)
    return "killed by signal " + std::to_string(r.signal) +
           (r.signal == 9 ? " (out of memory?)" : "") + (last.empty() ? "" : ": " + last);
  return "exit code " + std::to_string(r.exit_code) + (last.empty() ? "" : ": " + last);
}

nlohmann::json run_case(const Case& c, const fs::path& err_path) {
  const bench::ProcessResult r = bench::run_process(c.argv, err_path.string());
  if (r.exit_code != 0) return {{"error", child_failure(r, err_path)}};
  try {
    nlohmann::json figures = bench::run_figures(nlohmann::json::parse(r.out));
    if (figures.at("prompt_tokens") != c.length)
      return {{"error", "the prompt encoded to " + figures.at("prompt_tokens").dump() +
                            " tokens, not " + std::to_string(c.length)}};
    return figures;
  } catch (const std::exception& e) {
    return {{"error", std::string("unreadable `dapx generate --json` output: ") + e.what()}};
  }
}

// --throughput N: N requests back to back per case, in this process on one loaded target (and
// draft): requests/s and generated tokens/s as a server sees them, without the model load that
// each child pays. Runs after the children, so their peak RSS is not affected.
void measure_throughput(const Flags& f, bool any_draft, std::vector<Case>& cases,
                        const std::map<int64_t, fs::path>& prompts) {
  const ComputeOptions opts = apply_runtime_flags(f.runtime);
  const auto [target, draft] = load_target_and_draft(f.model, any_draft ? f.draft : "", opts);
  GenerationParams params;
  params.max_new_tokens = f.new_tokens;
  params.ignore_eos = true;
  for (Case& c : cases) {
    std::cerr << "throughput: " << c.method->label << " at " << c.length << " tokens, "
              << f.throughput << " requests...\n";
    try {
      const std::vector<int> prompt =
          target->tokenizer.encode(read_file(prompts.at(c.length).string()));
      const eval::MethodRun run{c.method->name, 0, c.method->params};
      int64_t tokens = 0;
      const Stopwatch clock;
      for (int i = 0; i < f.throughput; ++i)
        tokens += eval::run_one(*target, draft.get(), run, prompt, params)
                      .at("generated_tokens")
                      .get<int64_t>();
      const double s = clock.seconds();
      c.throughput = {{"requests_per_s", f.throughput / s}, {"tokens_per_s", tokens / s}};
    } catch (const std::exception& e) {  // recorded like a failed case; the others go on
      c.throughput = {{"throughput_error", e.what()}};
    }
  }
}

struct Models {
  ModelConfig target;
  std::optional<ModelConfig> draft;
};

// The process floor: working memory (peak RSS - weights) of a child that loads the target and
// answers an 8-token prompt with one token. What LibTorch, the tokenizer, the allocator and the
// threads hold whatever the request; each row's request_bytes is its working memory above it.
// Null (with a warning) when that child fails: the rows keep their working memory.
nlohmann::json measure_floor(const Flags& f, const fs::path& prompt, const fs::path& err_path) {
  Flags one = f;
  one.new_tokens = 1;
  BenchMethod full;
  full.label = full.name = "full";
  Case c;
  c.length = 8;
  c.method = &full;
  c.argv = case_argv(one, full, prompt);
  const nlohmann::json r = run_case(c, err_path);
  if (r.contains("error")) {
    std::cerr << "[dapx] warning: measuring the process floor failed ("
              << r["error"].get<std::string>() << "); request_bytes are left empty\n";
    return nullptr;
  }
  return {{"working_bytes", r.at("working_bytes")}, {"command", shell_line(c.argv)}};
}

nlohmann::json make_rows(const std::vector<Case>& cases, const Models& models,
                         const std::optional<bench::MachineLimits>& limits,
                         const nlohmann::json& floor) {
  nlohmann::json rows = nlohmann::json::array();
  for (const Case& c : cases) {
    bench::RowContext ctx;
    ctx.target = &models.target;
    ctx.draft = c.method->needs_draft && models.draft ? &*models.draft : nullptr;
    ctx.limits = limits ? &*limits : nullptr;
    nlohmann::json row = bench::make_row(c.method->label, c.length, c.method->budget, c.runs, ctx);
    row["command"] = shell_line(c.argv);
    if (c.throughput.is_object()) row.update(c.throughput);
    rows.push_back(row);
  }
  bench::add_request_memory(rows, floor.is_null() ? nlohmann::json() : floor["working_bytes"]);
  bench::add_ratios_to_full(rows);
  return rows;
}

void write_results(const fs::path& dir, nlohmann::json info, const nlohmann::json& rows) {
  info["rows"] = rows;
  bench::write_text(dir / "bench.json", info.dump(2) + "\n");
  bench::write_text(dir / "bench.csv", bench::csv_text(rows));
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("dapx-bench-" + std::to_string(getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void run(const Flags& f) {
  check_runtime_forwarding();
  const std::vector<BenchMethod> methods = plan_methods(f);
  bool any_draft = false, has_full = false;
  for (const BenchMethod& m : methods) {
    any_draft = any_draft || m.needs_draft;
    has_full = has_full || m.name == "full";
  }
  Models models{load_model_config(f.model), std::nullopt};
  if (any_draft) models.draft = load_model_config(f.draft);
  for (int64_t n : f.lengths)
    if (n + f.new_tokens > models.target.max_position_embeddings)
      throw Error("--lengths: " + std::to_string(n) + " prompt tokens + " +
                  std::to_string(f.new_tokens) + " new tokens exceed the target's context of " +
                  std::to_string(models.target.max_position_embeddings) +
                  " tokens (max_position_embeddings in " + f.model + "/config.json)");
  const ComputeOptions opts = apply_runtime_flags(f.runtime);  // checks --device, sets threads

  const fs::path dir =
      f.out.empty() ? fs::path("bench/results") / local_time("%Y%m%d-%H%M%S") : fs::path(f.out);
  std::error_code ec;
  if (fs::exists(dir) && !fs::is_empty(dir, ec))
    throw Error("'" + dir.string() +
                "' already holds files: a stored run is never overwritten; "
                "choose another --out or remove it");
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create '" + dir.string() + "': " + ec.message());
  if (!has_full)
    std::cerr << "[dapx] warning: no `full` in --methods: the ratios to full are left empty\n";

  nlohmann::json info = {{"name", dir.filename().string()},
                         {"started", local_time("%Y-%m-%dT%H:%M:%S%z")},
                         {"command", shell_line(own_command_line())},
                         {"machine", bench::cpu_info()}};
  info.update(git_state());
  info["machine"]["threads_used"] = at::get_num_threads();
  info["machine"]["device"] = f.runtime.device;
  info["settings"] = {{"model", f.model},
                      {"draft", f.draft},
                      {"lengths", f.lengths},
                      {"methods", f.methods},
                      {"new_tokens", f.new_tokens},
                      {"repeats", f.repeats},
                      {"budget", f.budget > 0 ? nlohmann::json(f.budget) : nlohmann::json()},
                      {"throughput", f.throughput},
                      {"runtime", runtime_argv(f.runtime)}};
  // The limits are the CPU's: against a GPU run they would say nothing.
  std::optional<bench::MachineLimits> limits;
  if (opts.device.is_cpu()) {
    std::cerr << "measuring the machine's limits (GEMM f32 and bf16, read bandwidth)...\n";
    limits = bench::measure_machine_limits();
    info["limits"] = {{"gemm_f32_gflops", limits->gemm_f32_gflops},
                      {"gemm_bf16_gflops", limits->gemm_bf16_gflops},
                      {"read_gbs", limits->read_gbs}};
  } else {
    std::cerr << "[dapx] warning: --device " << f.runtime.device
              << ": the machine's limits are measured on the CPU only; no fractions of them\n";
    info["limits"] = nullptr;
  }

  // The prompts stay with the results: each row's command can be run again as it stands.
  fs::create_directories(dir / "prompts");
  const TempDir scratch;  // the children's stderr
  const Tokenizer tok = load_model_tokenizer(f.model);
  const std::string corpus = read_file(default_data_dir() + "/corpus_en.txt");
  std::cerr << "measuring the process floor (the target, an 8-token prompt, one token)...\n";
  info["floor"] = measure_floor(f, bench::write_prompt_file(tok, corpus, 8, dir / "prompts"),
                                scratch.path / "child.log");
  std::map<int64_t, fs::path> prompts;
  std::vector<Case> cases;
  for (int64_t n : f.lengths) {
    prompts[n] = bench::write_prompt_file(tok, corpus, n, dir / "prompts");
    for (const BenchMethod& m : methods) {
      Case c;
      c.length = n;
      c.method = &m;
      c.argv = case_argv(f, m, prompts[n]);
      cases.push_back(c);
    }
  }
  // Repeats interleave the methods, so that a slow spell of a shared machine spreads over them.
  const size_t total = cases.size() * f.repeats;
  size_t done = 0;
  for (size_t first = 0; first < cases.size(); first += methods.size())
    for (int rep = 0; rep < f.repeats; ++rep)
      for (size_t i = first; i < first + methods.size(); ++i) {
        Case& c = cases[i];
        c.runs.push_back(run_case(c, scratch.path / "child.log"));
        const nlohmann::json& r = c.runs.back();
        char outcome[64];
        std::snprintf(outcome, sizeof outcome, "total %.3f s", r.value("total_s", 0.0));
        std::cerr << "[" << ++done << "/" << total << "] " << c.method->label << " at " << c.length
                  << " tokens, repeat " << rep + 1 << "/" << f.repeats << ": "
                  << (r.contains("error") ? "failed: " + r["error"].get<std::string>() : outcome)
                  << "\n";
        // after every run: a run cut short keeps what it measured
        write_results(dir, info, make_rows(cases, models, limits, info["floor"]));
      }
  if (f.throughput > 0) measure_throughput(f, any_draft, cases, prompts);

  const nlohmann::json rows = make_rows(cases, models, limits, info["floor"]);
  write_results(dir, info, rows);
  if (limits)
    std::printf(
        "machine: %s, %d threads; f32 GEMM %.1f GFLOP/s, bf16 GEMM %.1f GFLOP/s, "
        "read %.1f GB/s\n",
        info["machine"]["cpu_model"].get<std::string>().c_str(), at::get_num_threads(),
        limits->gemm_f32_gflops, limits->gemm_bf16_gflops, limits->read_gbs);
  std::cout << bench::table_text(rows) << std::flush;
  const std::string warning =
      bench::write_plot(dir, rows, "dapx bench: " + fs::path(f.model).filename().string());
  if (!warning.empty()) std::cerr << "[dapx] warning: " << warning << "\n";
  std::cerr << "results: " << dir.string() << "/bench.{json,csv" << (warning.empty() ? ",svg" : "")
            << "}\n";
  int failed = 0;
  for (const nlohmann::json& row : rows)
    failed += row.contains("error") || row.contains("throughput_error");
  if (failed > 0)
    throw Error(std::to_string(failed) + " of " + std::to_string(rows.size()) +
                " cases failed; their errors are in the table and in " + dir.string() +
                "/bench.json");
}

}  // namespace

void register_bench(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Methods against full KV per prompt length: TTFT, time per output token, latency, peak and "
      "working memory, KV bytes, against the machine's limits; each case in its own process");
  cmd->add_option("--model,-m", f->model, "Target model directory")->required();
  cmd->add_option("--draft,-d", f->draft,
                  "Draft model directory (same tokenizer), for the methods that run it");
  cmd->add_option("--lengths", f->lengths, "Prompt lengths in tokens, e.g. 4096,8192,16384")
      ->delimiter(',')
      ->check(int_range(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("--methods", f->methods,
                  "Comma-separated methods (" + method_list_help() +
                      "); NAME:PREFILL sets --prefill, e.g. speckv:sparse. Ratios are to full")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--new-tokens,-n", f->new_tokens,
                  "Tokens generated per case (--ignore-eos), at least 2 for a time per token")
      ->check(int_range(2, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--repeats", f->repeats, "Runs per case; figures are their median")
      ->check(int_range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--budget", f->budget,
                  "Every method's budget (KV entries per head; prompt tokens for prompt methods; "
                  "the KV budget of speckv-pc); default: each method's own")
      ->check(int_range(1, 1 << 24));
  cmd->add_option("--out,-o", f->out,
                  "Result directory (default bench/results/DATE-TIME); must be new or empty");
  cmd->add_option("--throughput", f->throughput,
                  "Also run N requests back to back per case in this process, on one loaded "
                  "model: requests/s and generated tokens/s")
      ->check(int_range(0, 1 << 20));
  add_runtime_flags(*cmd, f->runtime);
  cmd->callback([f] { run(*f); });
}

}  // namespace dapx::cli
