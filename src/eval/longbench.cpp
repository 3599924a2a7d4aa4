#include "eval/longbench.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "eval/metrics.h"
#include "util/error.h"

namespace dapx::eval {

namespace {

using nlohmann::json;

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string describe(const json& value) { return std::string(value.type_name()); }

// Reads a field of a JSONL row; `where` is "<file>:<line>".
std::string string_field(const json& row, const char* key, const std::string& where) {
  const auto it = row.find(key);
  if (it == row.end()) throw Error(where + ": missing field \"" + key + "\" (a string)");
  if (!it->is_string()) {
    throw Error(where + ": field \"" + key + "\" must be a string, got " + describe(*it));
  }
  return it->get<std::string>();
}

std::vector<std::string> string_list(const json& value, const char* key, const std::string& where) {
  if (!value.is_array()) {
    throw Error(where + ": field \"" + key + "\" must be an array of strings, got " +
                describe(value));
  }
  std::vector<std::string> out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string()) {
      throw Error(where + ": field \"" + key + "\" must be an array of strings, but element " +
                  std::to_string(i) + " is a " + describe(value[i]));
    }
    out.push_back(value[i].get<std::string>());
  }
  return out;
}

LongBenchRow parse_row(const json& row, const std::string& where) {
  if (!row.is_object()) throw Error(where + ": expected a JSON object, got " + describe(row));
  LongBenchRow out;
  out.input = string_field(row, "input", where);
  out.context = string_field(row, "context", where);
  const auto answers = row.find("answers");
  if (answers == row.end()) {
    throw Error(where + ": missing field \"answers\" (an array of strings)");
  }
  out.answers = string_list(*answers, "answers", where);
  // LongBench writes null here for every dataset that is not a classification.
  if (const auto it = row.find("all_classes"); it != row.end() && !it->is_null()) {
    out.all_classes = string_list(*it, "all_classes", where);
  }
  if (const auto it = row.find("length"); it != row.end()) {
    if (!it->is_number_integer()) {
      throw Error(where + ": field \"length\" must be an integer, got " + describe(*it));
    }
    out.length = it->get<int64_t>();
  }
  if (const auto it = row.find("_id"); it != row.end()) {
    if (!it->is_string()) {
      throw Error(where + ": field \"_id\" must be a string, got " + describe(*it));
    }
    out.id = it->get<std::string>();
  }
  return out;
}

// The parser's reason without its own "line 1, column N" (each row is parsed alone, so the
// position in the file is given instead).
std::string parse_reason(const json::parse_error& e) {
  const std::string what = e.what();
  const std::size_t column = what.find("column ");
  const std::size_t colon = column == std::string::npos ? column : what.find(": ", column);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

// str.format over {context} and {input}: one pass, so braces inside the filled text stay as
// they are. `template_of` names the template in errors.
std::string fill_template(const std::string& tmpl, const LongBenchRow& row,
                          const std::string& template_of) {
  std::string out;
  out.reserve(tmpl.size() + row.context.size() + row.input.size());
  std::size_t i = 0;
  while (i < tmpl.size()) {
    const char c = tmpl[i];
    if (c == '{' || c == '}') {
      if (i + 1 < tmpl.size() && tmpl[i + 1] == c) {  // {{ or }}
        out += c;
        i += 2;
        continue;
      }
      if (c == '}') {
        throw Error(template_of + ": a single '}' in the prompt template; write }} for a literal");
      }
      const std::size_t close = tmpl.find('}', i);
      if (close == std::string::npos) {
        throw Error(template_of +
                    ": an unclosed '{' in the prompt template; write {{ for a literal");
      }
      const std::string field = tmpl.substr(i + 1, close - i - 1);
      if (field == "context") {
        out += row.context;
      } else if (field == "input") {
        out += row.input;
      } else {
        throw Error(template_of + ": unknown placeholder {" + field +
                    "} in the prompt template; only {context} and {input} are filled");
      }
      i = close + 1;
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

// eval.py: leading newlines dropped, then everything from the first newline on.
std::string first_line(const std::string& s) {
  const std::size_t start = s.find_first_not_of('\n');
  if (start == std::string::npos) return {};
  return s.substr(start, s.find('\n', start) - start);
}

bool optional_bool(const json& entry, const char* key, bool fallback, const std::string& where) {
  const auto it = entry.find(key);
  if (it == entry.end()) return fallback;
  if (!it->is_boolean()) {
    throw Error(where + ": \"" + key + "\" must be true or false, got " + describe(*it));
  }
  return it->get<bool>();
}

LongBenchDataset parse_dataset(const std::string& name, const json& entry,
                               const std::string& where) {
  if (!entry.is_object()) throw Error(where + ": expected an object, got " + describe(entry));
  for (const auto& item : entry.items()) {
    const std::string& key = item.key();
    if (key != "prompt" && key != "max_new_tokens" && key != "metric" && key != "first_line_only" &&
        key != "chat_template" && key != "stop_at_newline") {
      throw Error(where + ": unknown key \"" + key +
                  "\"; the keys are prompt, max_new_tokens, metric, first_line_only, "
                  "chat_template, stop_at_newline");
    }
  }
  LongBenchDataset ds;
  ds.name = name;
  const auto prompt = entry.find("prompt");
  if (prompt == entry.end() || !prompt->is_string()) {
    throw Error(where + ": \"prompt\" must be a string (the template with {context}, {input})");
  }
  ds.prompt_template = prompt->get<std::string>();
  const auto max_new = entry.find("max_new_tokens");
  if (max_new == entry.end() || !max_new->is_number_integer() || max_new->get<int64_t>() <= 0 ||
      max_new->get<int64_t>() > 1'000'000) {
    throw Error(where + ": \"max_new_tokens\" must be a positive integer");
  }
  ds.max_new_tokens = max_new->get<int>();
  const auto metric = entry.find("metric");
  const std::vector<std::string> metrics = metric_names();
  if (metric == entry.end() || !metric->is_string() ||
      std::find(metrics.begin(), metrics.end(), metric->get<std::string>()) == metrics.end()) {
    throw Error(where + ": \"metric\" must be one of " + join(metrics));
  }
  ds.metric = metric->get<std::string>();
  ds.first_line_only = optional_bool(entry, "first_line_only", false, where);
  ds.chat_template = optional_bool(entry, "chat_template", true, where);
  ds.stop_at_newline = optional_bool(entry, "stop_at_newline", false, where);
  fill_template(ds.prompt_template, LongBenchRow{}, where);  // placeholders checked now
  return ds;
}

}  // namespace

std::vector<LongBenchRow> read_longbench_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error("cannot open LongBench file " + path.string() + ": " + std::strerror(errno) +
                " (expected one JSON object per line, as the LongBench data/*.jsonl files)");
  }
  std::vector<LongBenchRow> rows;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(number);
    json row;
    try {
      row = json::parse(line);
    } catch (const json::parse_error& e) {
      throw Error(where + ": not valid JSON at column " + std::to_string(e.byte) + ": " +
                  parse_reason(e));
    }
    rows.push_back(parse_row(row, where));
  }
  if (in.bad()) throw Error("reading LongBench file " + path.string() + " failed");
  return rows;
}

LongBenchConfig LongBenchConfig::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error("cannot open the LongBench settings " + path.string() + ": " +
                std::strerror(errno) + " (they ship as data/eval/longbench.json)");
  }
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::parse_error& e) {
    throw Error(path.string() + ": not valid JSON (" + e.what() + ")");
  }
  const auto datasets = doc.is_object() ? doc.find("datasets") : doc.end();
  if (!doc.is_object() || datasets == doc.end() || !datasets->is_object() || datasets->empty()) {
    throw Error(path.string() +
                ": expected an object with a non-empty \"datasets\" object (name -> settings)");
  }
  LongBenchConfig config;
  for (const auto& item : datasets->items()) {
    const std::string where = path.string() + ": dataset \"" + item.key() + "\"";
    config.datasets_.emplace(item.key(), parse_dataset(item.key(), item.value(), where));
  }
  return config;
}

const LongBenchDataset& LongBenchConfig::dataset(const std::string& name) const {
  const auto it = datasets_.find(name);
  if (it == datasets_.end()) {
    throw Error("unknown LongBench dataset \"" + name + "\"; known: " + join(names()));
  }
  return it->second;
}

std::vector<std::string> LongBenchConfig::names() const {
  std::vector<std::string> out;
  out.reserve(datasets_.size());
  for (const auto& entry : datasets_) out.push_back(entry.first);
  return out;
}

std::string longbench_prompt(const LongBenchDataset& ds, const LongBenchRow& row) {
  return fill_template(ds.prompt_template, row, "LongBench dataset \"" + ds.name + "\"");
}

double longbench_score(const LongBenchDataset& ds, const std::string& prediction,
                       const LongBenchRow& row) {
  const std::string scored = ds.first_line_only ? first_line(prediction) : prediction;
  double best = 0.0;
  for (const std::string& answer : row.answers) {
    best = std::max(best, score_metric(ds.metric, scored, answer, row.all_classes));
  }
  return 100.0 * best;
}

}  // namespace dapx::eval
