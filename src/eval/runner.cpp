#include "eval/runner.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>

#include "engine/generator.h"
#include "eval/fingerprint.h"
#include "methods/catalogue.h"
#include "util/error.h"

namespace dapx::eval {
namespace {

// RULER's categories, for the per-category averages of the summary.
std::string category_of(const std::string& task) {
  if (task.rfind("niah", 0) == 0) return "niah";
  if (task == "vt") return "multi-hop tracing";
  if (task == "cwe" || task == "fwe") return "aggregation";
  if (task.rfind("qa", 0) == 0) return "qa";
  return "longbench";
}

std::unique_ptr<Method> build_method(const MethodRun& run, const LoadedModel* draft) {
  const MethodSpec& spec = method_spec(run.method);
  nlohmann::json params = run.params.is_null() ? nlohmann::json::object() : run.params;
  if (run.budget > 0) {
    if (spec.budget_param().empty()) throw Error("method '" + run.method + "' has no budget");
    params[spec.budget_param()] = run.budget;
  }
  MethodOptions options;
  if (spec.needs_draft && draft) options.draft = &draft->transformer;
  return make_method(run.method, params, options);
}

// Every run is built once before anything is generated: a parameter or budget a method
// rejects stops the evaluation before the first row, not in the middle.
void check_runs(const EvalPlan& plan, const LoadedModel* draft) {
  if (plan.runs.empty()) throw Error("no method to evaluate");
  if (plan.samples < 1) throw Error("samples must be >= 1");
  for (const MethodRun& run : plan.runs) {
    try {
      build_method(run, draft);
    } catch (const Error& e) {
      throw Error("run " + run.label() + ": " + e.what());
    }
  }
}

// "seed was 1, this run has 2; model_hash was ..., this run has ...": each field of either
// setup whose value differs, in the order of this run's setup, then fields only the file has.
std::string setup_difference(const nlohmann::json& was, const nlohmann::json& now) {
  std::string out;
  const auto shown = [](const nlohmann::json& obj, const std::string& key) {
    return obj.is_object() && obj.contains(key) ? obj.at(key).dump() : std::string("(none)");
  };
  const auto add = [&](const std::string& key) {
    out += (out.empty() ? "" : "; ") + key + " was " + shown(was, key) + ", this run has " +
           shown(now, key);
  };
  if (!was.is_object() || !now.is_object())
    return "the setup was " + was.dump() + ", this run has " + now.dump();
  for (const auto& [key, value] : now.items())
    if (!was.contains(key) || was.at(key) != value) add(key);
  for (const auto& [key, value] : was.items())
    if (!now.contains(key)) add(key);
  return out;
}

// The prompt a sample's rows were made from is recorded with them ("prompt_hash"): a sample
// made again on resume must be the same prompt (LongBench lengths change with it, so they are
// not part of this key).
std::string sample_key(const nlohmann::json& row) {
  const bool ruler = row.at("suite") == "ruler";
  return row.at("suite").get<std::string>() + "|" + row.at("task").get<std::string>() + "|" +
         (ruler ? std::to_string(row.at("length").get<int64_t>()) : std::string("-")) + "|" +
         std::to_string(row.at("sample").get<int>());
}

class PromptCheck {
 public:
  explicit PromptCheck(const ResultLog& log) : path_(log.path()) {
    for (const nlohmann::json& r : log.rows())
      if (r.contains("prompt_hash")) hashes_.emplace(sample_key(r), r.at("prompt_hash"));
  }
  void check(const nlohmann::json& key, const std::string& hash, const std::string& source) const {
    const auto it = hashes_.find(sample_key(key));
    if (it == hashes_.end() || it->second == hash) return;
    throw Error(path_.string() + ": the rows of " + key.at("task").get<std::string>() + " sample " +
                std::to_string(key.at("sample").get<int>()) +
                " were made from another prompt (prompt_hash was \"" + it->second +
                "\", this run has \"" + hash + "\"): " + source +
                " changed since; choose another --out or remove the file");
  }

 private:
  std::filesystem::path path_;
  std::map<std::string, std::string> hashes_;
};

// What the runner records of every generation, whatever generated it.
nlohmann::json run_fields(const MethodRun& run, const std::vector<int>& prompt) {
  return {{"method", run.method},
          {"budget", run.budget},
          {"params", run.params},
          {"prompt_tokens", prompt.size()}};
}

std::vector<int> joined(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / v.size();
}

}  // namespace

nlohmann::json run_one(const LoadedModel& target, const LoadedModel* draft, const MethodRun& run,
                       const std::vector<int>& prompt, const GenerationParams& params) {
  const std::unique_ptr<Method> method = build_method(run, draft);
  GenerationResult g = generate(target, *method, prompt, params);
  if (draft && method_spec(run.method).needs_draft)
    count_draft_weights(g.stats, draft->transformer);
  return {{"method", run.method},
          {"budget", run.budget},
          {"params", run.params},
          {"run", run.label()},
          {"prompt_tokens", prompt.size()},
          {"output", g.text},
          {"generated_tokens", g.stats.generated_tokens},
          {"finish_reason", g.stats.finish_reason},
          {"ttft_s", g.stats.ttft_s},
          {"total_s", g.stats.total_s},
          {"kv_bytes", g.stats.kv_bytes},
          {"kv_bytes_full", g.stats.kv_bytes_full},
          {"peak_rss_bytes", g.stats.peak_rss_bytes},
          {"tensor_peak_bytes", g.stats.tensor_peak_bytes},
          {"peak_rss_scope", g.stats.peak_rss_scope}};
}

std::string MethodRun::label() const {
  std::string s = method;
  if (budget > 0) s += "@" + std::to_string(budget);
  if (!params.empty()) s += params.dump();
  return s;
}

ResultLog::ResultLog(const std::filesystem::path& path, const nlohmann::json& setup)
    : path_(path), setup_(setup) {
  std::ifstream in(path);
  if (!in) return;  // a new file
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  size_t good_bytes = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    nlohmann::json row = nlohmann::json::parse(lines[i], nullptr, false);
    if (row.is_discarded() || !row.is_object()) {
      if (i + 1 == lines.size()) {  // cut short by a killed run: drop it
        std::filesystem::resize_file(path, good_bytes);
        break;
      }
      throw Error(path.string() + ":" + std::to_string(i + 1) +
                  ": not a JSON object; fix or remove the line to resume");
    }
    good_bytes += lines[i].size() + 1;
    if (!setup_.is_null() && row.value("setup", nlohmann::json()) != setup_)
      throw Error(
          path.string() + ":" + std::to_string(i + 1) + ": " +
          (row.contains("setup")
               ? "a result of another setup: " + setup_difference(row["setup"], setup_)
               : "a result of an unrecorded setup (an older dapx), this run is " + setup_.dump()) +
          "; rows of other models or settings would be reported as this run's: "
          "choose another --out or remove the file");
    try {
      keys_.insert(key_of(row));
    } catch (const Error& e) {
      throw Error(path.string() + ":" + std::to_string(i + 1) + ": " + e.what());
    }
    rows_.push_back(std::move(row));
  }
}

std::string ResultLog::key_of(const nlohmann::json& row) {
  try {
    return row.at("suite").get<std::string>() + "|" + row.at("task").get<std::string>() + "|" +
           std::to_string(row.at("length").get<int64_t>()) + "|" +
           row.at("run").get<std::string>() + "|" + std::to_string(row.at("sample").get<int>());
  } catch (const nlohmann::json::exception& e) {
    throw Error("a result row lacks its key fields (suite, task, length, run, sample): " +
                std::string(e.what()));
  }
}

void ResultLog::append(const nlohmann::json& given) {
  nlohmann::json row = given;
  if (!setup_.is_null()) row["setup"] = setup_;
  std::ofstream out(path_, std::ios::app);
  out << row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  out.flush();
  if (!out) throw Error("cannot append to '" + path_.string() + "'");
  keys_.insert(key_of(row));
  rows_.push_back(row);
}

std::pair<std::string, std::string> chat_wrapping(const LoadedModel& target) {
  if (target.chat_format == ChatFormat::Raw) {
    const std::string config = (target.dir / "tokenizer_config.json").string();
    if (chat_template_text(target.dir).empty())
      throw Error("--chat: the model " + target.dir.string() + " has no chat template (no " +
                  "\"chat_template\" in " + config +
                  "): evaluate it without --chat, or add its instruct model's template there");
    throw Error("--chat: the chat template in " + config +
                " is neither ChatML nor Llama 3, the formats dapx renders: evaluate the model " +
                target.dir.string() + " without --chat");
  }
  const std::string marker = "\x1f";  // a byte no chat markup holds
  const std::string text = apply_chat_format(target.chat_format, {{"user", marker}}, true);
  const size_t at = text.find(marker);
  return {text.substr(0, at), text.substr(at + marker.size())};
}

void run_ruler(const LoadedModel& target, const LoadedModel* draft, const TaskSuite& suite,
               const EvalPlan& plan, ResultLog& log, const Progress& progress,
               const Completion& complete) {
  check_runs(plan, draft);
  std::pair<std::string, std::string> wrap;
  int markup_tokens = 0;  // the chat markup's share of the length
  if (plan.chat) {
    wrap = chat_wrapping(target);
    markup_tokens = static_cast<int>(target.tokenizer.encode(wrap.first + wrap.second).size());
  }
  for (const std::string& task : plan.tasks) {
    const int shortest = suite.min_tokens(task, target.tokenizer) + markup_tokens;
    for (int length : plan.lengths)
      if (length < shortest)
        throw Error("task " + task + " needs at least " + std::to_string(shortest) + " tokens" +
                    (plan.chat ? " (with the chat markup)" : "") + "; length " +
                    std::to_string(length) + " is too short");
  }
  const PromptCheck prompt_check(log);
  const int total =
      static_cast<int>(plan.lengths.size() * plan.tasks.size() * plan.samples * plan.runs.size());
  int done = 0;
  for (int length : plan.lengths) {
    for (const std::string& task : plan.tasks) {
      for (int i = 0; i < plan.samples; ++i) {
        std::optional<Sample> sample;  // made only when some run of it is missing
        std::vector<int> prompt;
        for (const MethodRun& run : plan.runs) {
          nlohmann::json row = {{"suite", "ruler"},
                                {"task", task},
                                {"length", length},
                                {"sample", i},
                                {"run", run.label()}};
          if (log.has(ResultLog::key_of(row))) {
            ++done;
            continue;
          }
          if (!sample) {
            sample = suite.make(task, target.tokenizer, length - markup_tokens, plan.seed + i);
            prompt = target.tokenizer.encode(plan.chat ? wrap.first + sample->input + wrap.second +
                                                             sample->answer_prefix
                                                       : sample->prompt());
            prompt_check.check(row, tokens_hash(prompt), "the task templates or their words");
          }
          GenerationParams params;
          params.max_new_tokens =
              plan.max_new_tokens > 0 ? plan.max_new_tokens : sample->max_new_tokens;
          row.update(complete ? complete(row, run, prompt, params)
                              : run_one(target, draft, run, prompt, params));
          row.update(run_fields(run, prompt));
          const double score = sample->metric == "string_match_part"
                                   ? string_match_part(row["output"], sample->answers)
                                   : string_match_all(row["output"], sample->answers);
          row.update({{"seed", sample->seed},
                      {"prompt_hash", tokens_hash(prompt)},
                      {"answers", sample->answers},
                      {"metric", sample->metric},
                      {"score", score}});
          log.append(row);
          if (progress.on_row) progress.on_row(++done, total, row);
        }
      }
    }
  }
}

void run_longbench(const LoadedModel& target, const LoadedModel* draft,
                   const LongBenchConfig& config, const std::filesystem::path& data_dir,
                   const EvalPlan& plan, ResultLog& log, const Progress& progress,
                   const Completion& complete) {
  check_runs(plan, draft);
  std::pair<std::string, std::string> wrap;
  std::vector<int> wrap_before, wrap_after;
  if (plan.chat) {
    wrap = chat_wrapping(target);
    wrap_before = target.tokenizer.encode(wrap.first);
    wrap_after = target.tokenizer.encode(wrap.second);
  }
  const PromptCheck prompt_check(log);
  std::vector<std::pair<const LongBenchDataset*, std::vector<LongBenchRow>>> sets;
  int total = 0;
  for (const std::string& name : plan.tasks) {
    const LongBenchDataset& ds = config.dataset(name);
    std::vector<LongBenchRow> rows = read_longbench_jsonl(data_dir / (name + ".jsonl"));
    if (static_cast<int>(rows.size()) > plan.samples) rows.resize(plan.samples);
    total += static_cast<int>(rows.size() * plan.runs.size());
    sets.emplace_back(&ds, std::move(rows));
  }
  int done = 0;
  const int64_t context = target.config.max_position_embeddings;
  for (const auto& [ds, rows] : sets) {
    for (size_t i = 0; i < rows.size(); ++i) {
      GenerationParams params;
      params.max_new_tokens = plan.max_new_tokens > 0 ? plan.max_new_tokens : ds->max_new_tokens;
      if (ds->stop_at_newline) params.stop = {"\n"};
      // pred.py wraps the (cut) prompt in the chat format, except for the datasets it keeps raw.
      const bool chat = plan.chat && ds->chat_template;
      const std::string text = longbench_prompt(*ds, rows[i]);
      std::vector<int> prompt =
          target.tokenizer.encode(chat ? wrap.first + text + wrap.second : text);
      const int64_t room = context - params.max_new_tokens;
      const int64_t markup =
          chat ? static_cast<int64_t>(wrap_before.size() + wrap_after.size()) : 0;
      if (room - markup < 2) throw Error("the model's context is too short for " + ds->name);
      if (static_cast<int64_t>(prompt.size()) > room) {  // keep both ends, as LongBench does
        const std::vector<int> body = chat ? target.tokenizer.encode(text) : prompt;
        const int64_t keep = room - markup, half = keep / 2;
        std::vector<int> cut = body;  // the markup merged into fewer tokens in one piece
        if (static_cast<int64_t>(body.size()) > keep) {
          cut.assign(body.begin(), body.begin() + half);
          cut.insert(cut.end(), body.end() - (keep - half), body.end());
        }
        prompt = chat ? joined(joined(wrap_before, cut), wrap_after) : std::move(cut);
      }
      const std::string prompt_hash = tokens_hash(prompt);
      prompt_check.check(
          {{"suite", "longbench"}, {"task", ds->name}, {"sample", static_cast<int>(i)}},
          prompt_hash,
          "the data file " + (data_dir / (ds->name + ".jsonl")).string() +
              " or its prompt template");
      for (const MethodRun& run : plan.runs) {
        nlohmann::json row = {{"suite", "longbench"},
                              {"task", ds->name},
                              {"length", static_cast<int64_t>(prompt.size())},
                              {"sample", static_cast<int>(i)},
                              {"run", run.label()}};
        if (log.has(ResultLog::key_of(row))) {
          ++done;
          continue;
        }
        row.update(complete ? complete(row, run, prompt, params)
                            : run_one(target, draft, run, prompt, params));
        row.update(run_fields(run, prompt));
        row.update({{"id", rows[i].id},
                    {"prompt_hash", prompt_hash},
                    {"answers", rows[i].answers},
                    {"metric", ds->metric},
                    {"score", longbench_score(*ds, row["output"], rows[i])}});
        log.append(row);
        if (progress.on_row) progress.on_row(++done, total, row);
      }
    }
  }
}

std::vector<nlohmann::json> rows_of_plan(const std::vector<nlohmann::json>& rows,
                                         const EvalPlan& plan) {
  const auto has = [](const auto& list, const auto& x) {
    return std::find(list.begin(), list.end(), x) != list.end();
  };
  std::vector<std::string> labels;
  for (const MethodRun& run : plan.runs) labels.push_back(run.label());
  std::vector<nlohmann::json> kept;
  for (const nlohmann::json& r : rows) {
    const bool ruler = r.at("suite") == "ruler";
    if (has(plan.tasks, r.at("task").get<std::string>()) &&
        has(labels, r.at("run").get<std::string>()) && r.at("sample").get<int>() < plan.samples &&
        (!ruler || has(plan.lengths, r.at("length").get<int>())))
      kept.push_back(r);
  }
  return kept;
}

nlohmann::json summarize(const std::vector<nlohmann::json>& rows) {
  struct Cell {
    std::vector<double> score, ttft, total, kv, kv_full;
  };
  std::map<std::tuple<std::string, int64_t, std::string>, Cell> cells, cats;
  std::vector<std::string> run_order;
  nlohmann::json run_info = nlohmann::json::object();
  for (const nlohmann::json& r : rows) {
    const std::string run = r.at("run"), task = r.at("task");
    if (std::find(run_order.begin(), run_order.end(), run) == run_order.end()) {
      run_order.push_back(run);
      run_info[run] = {{"method", r.at("method")}, {"budget", r.at("budget")}};
    }
    const int64_t length = r.at("suite") == "ruler" ? r.at("length").get<int64_t>() : 0;
    for (auto* target : {&cells[{task, length, run}], &cats[{category_of(task), length, run}],
                         &cats[{"all", length, run}]}) {
      target->score.push_back(r.at("score"));
      target->ttft.push_back(r.value("ttft_s", 0.0));
      target->total.push_back(r.value("total_s", 0.0));
      target->kv.push_back(r.value("kv_bytes", 0.0));
      target->kv_full.push_back(r.value("kv_bytes_full", 0.0));
    }
  }
  const auto dump = [&](const auto& map, const char* what) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [key, c] : map)
      out.push_back({{what, std::get<0>(key)},
                     {"length", std::get<1>(key)},
                     {"run", std::get<2>(key)},
                     {"samples", c.score.size()},
                     {"score", mean(c.score)},
                     {"ttft_s", mean(c.ttft)},
                     {"total_s", mean(c.total)},
                     {"kv_bytes", mean(c.kv)},
                     {"kv_ratio", mean(c.kv_full) > 0 ? mean(c.kv) / mean(c.kv_full) : 1.0}});
    return out;
  };
  return {{"runs", run_order},
          {"run_info", run_info},
          {"cells", dump(cells, "task")},
          {"categories", dump(cats, "category")}};
}

std::string summary_table(const nlohmann::json& summary) {
  const std::vector<std::string> runs = summary.at("runs");
  std::map<int64_t, std::map<std::string, std::map<std::string, double>>> table;  // len/row/run
  std::map<int64_t, std::vector<std::string>> row_order;
  const auto add = [&](const nlohmann::json& c, const std::string& name) {
    const int64_t len = c.at("length");
    auto& row = table[len][name];
    if (row.empty()) row_order[len].push_back(name);
    row[c.at("run")] = c.at("score");
  };
  for (const auto& c : summary.at("cells")) add(c, c.at("task"));
  for (const auto& c : summary.at("categories"))
    add(c, "avg " + c.at("category").get<std::string>());
  // What the scores cost, over all tasks of a length: researchers compare both.
  struct Cost {
    const char* row;
    const char* field;
    double scale;
    const char* format;
  };
  const Cost costs[] = {{"seconds per sample", "total_s", 1.0, " %.2f |"},
                        {"TTFT (s)", "ttft_s", 1.0, " %.2f |"},
                        {"KV kept (%)", "kv_ratio", 100.0, " %.1f |"}};
  std::map<int64_t, std::map<std::string, std::map<std::string, double>>> cost;  // len/row/run
  for (const auto& c : summary.at("categories"))
    if (c.at("category") == "all")
      for (const Cost& k : costs)
        cost[c.at("length")][k.row][c.at("run")] = c.at(k.field).get<double>() * k.scale;
  std::ostringstream out;
  for (const auto& [len, rows] : table) {
    out << "\n"
        << (len > 0 ? "length " + std::to_string(len) : std::string("LongBench")) << "\n\n| task |";
    for (const auto& r : runs) out << " " << r << " |";
    out << "\n| --- |";
    for (size_t i = 0; i < runs.size(); ++i) out << " ---: |";
    out << "\n";
    for (const std::string& name : row_order[len]) {
      out << "| " << name << " |";
      for (const auto& r : runs) {
        const auto it = rows.at(name).find(r);
        char buf[32];
        if (it == rows.at(name).end())
          std::snprintf(buf, sizeof buf, " - |");
        else
          std::snprintf(buf, sizeof buf, " %.1f |", it->second);
        out << buf;
      }
      out << "\n";
    }
    for (const Cost& k : costs) {
      out << "| " << k.row << " |";
      for (const auto& r : runs) {
        const auto& by_run = cost[len][k.row];
        const auto it = by_run.find(r);
        char buf[32];
        std::snprintf(buf, sizeof buf, it == by_run.end() ? " - |" : k.format,
                      it == by_run.end() ? 0.0 : it->second);
        out << buf;
      }
      out << "\n";
    }
  }
  return out.str();
}

}  // namespace dapx::eval
