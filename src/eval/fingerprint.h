#pragma once
// Fingerprints of what an evaluation's rows depend on, cheap enough to take at every start: a
// resumed results file must hold rows of the same weights, templates and text, not of a model
// or task set that has changed since.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "eval/text_sources.h"

namespace dapx::eval {

// 16 hex digits of FNV-1a 64 (fnv1a64): a stable hash for change detection (not for security).
std::string hash_hex(std::string_view bytes);

// The hash of a file's bytes; errors name the path.
std::string file_hash(const std::filesystem::path& path);

// The hash of a tokenized prompt (the token ids as 32-bit little-endian integers).
std::string tokens_hash(const std::vector<int>& tokens);

// A model directory's fingerprint, read in milliseconds whatever the model's size: every *.json
// file (config.json, generation_config.json, tokenizer.json, tokenizer_config.json with its chat
// template, the shard index) in full; for every *.safetensors file its size, its header (tensor
// names, dtypes, shapes, offsets) and the first and last 256 bytes of each tensor's data. The
// header alone is the same for two checkpoints of one shape (a retrained draft), and hashing
// every weight byte would read gigabytes at each start; a change of weights that leaves every
// tensor's first and last 256 bytes as they were (a few edited values mid-tensor) is not seen.
// Errors name the directory or file.
std::string model_fingerprint(const std::filesystem::path& dir);

// The hash of the words and prose paragraphs the RULER-style samples are made of (they come from
// system packages, which differ between machines and releases).
std::string text_sources_hash(const TextSources& sources);

}  // namespace dapx::eval
