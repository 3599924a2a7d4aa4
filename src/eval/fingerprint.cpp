#include "eval/fingerprint.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/gguf.h"
#include "util/error.h"

namespace dapx::eval {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kEdgeBytes = 256;  // per tensor: its first and last bytes
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path.string() + "' to fingerprint it");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Bytes [offset, offset + n) of an open file; errors name the path.
std::string read_at(std::ifstream& in, uint64_t offset, uint64_t n, const fs::path& path) {
  std::string out(n, '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  if (!in.read(out.data(), static_cast<std::streamsize>(n)))
    throw Error("'" + path.string() + "' is shorter than its safetensors header says");
  return out;
}

void add_field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += '=';
  out += std::to_string(value.size());
  out += ':';
  out += value;
  out += '\n';
}

// Size, header and each tensor's edges, in header order (the header's JSON keeps its own).
void add_safetensors(std::string& out, const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path.string() + "' to fingerprint it");
  const uint64_t size = fs::file_size(path);
  add_field(out, "size", std::to_string(size));
  if (size < 8) throw Error("'" + path.string() + "' is not a safetensors file (under 8 bytes)");
  const std::string len_bytes = read_at(in, 0, 8, path);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(len_bytes[i]);
  if (header_len > kMaxHeaderBytes || 8 + header_len > size)
    throw Error("'" + path.string() + "' is not a safetensors file (header length " +
                std::to_string(header_len) + ")");
  const std::string header = read_at(in, 8, header_len, path);
  add_field(out, "header", header);
  const nlohmann::json h = nlohmann::json::parse(header, nullptr, false);
  if (!h.is_object()) throw Error("'" + path.string() + "': the safetensors header is not JSON");
  const uint64_t data_start = 8 + header_len;
  for (const auto& [name, entry] : h.items()) {
    if (name == "__metadata__" || !entry.is_object() || !entry.contains("data_offsets")) continue;
    const nlohmann::json& off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      throw Error("'" + path.string() + "': tensor '" + name + "' has malformed data_offsets");
    const uint64_t begin = data_start + off[0].get<uint64_t>(),
                   end = data_start + off[1].get<uint64_t>();
    if (end < begin || end > size)
      throw Error("'" + path.string() + "': tensor '" + name + "' lies outside the file");
    const uint64_t n = std::min(kEdgeBytes, end - begin);
    add_field(out, name, read_at(in, begin, n, path) + read_at(in, end - n, n, path));
  }
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::string hash_hex(std::string_view bytes) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(bytes)));
  return buf;
}

std::string file_hash(const fs::path& path) { return hash_hex(read_all(path)); }

std::string tokens_hash(const std::vector<int>& tokens) {
  std::string bytes;
  bytes.reserve(tokens.size() * 4);
  for (const int t : tokens)
    for (int i = 0; i < 4; ++i)
      bytes.push_back(static_cast<char>((static_cast<uint32_t>(t) >> (8 * i)) & 0xff));
  return hash_hex(bytes);
}

std::string model_fingerprint(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {  // a GGUF file: its metadata, each tensor's two ends
    const std::unique_ptr<GgufFile> file = GgufFile::open(dir);
    std::string all;
    add_field(all, "size", std::to_string(file->file_size()));
    std::ifstream in(dir, std::ios::binary);
    add_field(all, "header", read_at(in, 0, file->data_offset(), dir));
    for (const GgufTensor& t : file->tensors()) {
      if (t.nbytes == 0) continue;
      const size_t n = std::min<size_t>(kEdgeBytes, t.nbytes);
      add_field(all, t.name,
                std::string(reinterpret_cast<const char*>(t.data), n) +
                    std::string(reinterpret_cast<const char*>(t.data) + t.nbytes - n, n));
    }
    return hash_hex(all);
  }
  if (!fs::is_directory(dir, ec))
    throw Error("cannot fingerprint model '" + dir.string() + "': not a directory or a file");
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && (ends_with(name, ".json") || ends_with(name, ".safetensors")))
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::string all;
  for (const fs::path& f : files) {
    const std::string name = f.filename().string();
    add_field(all, "file", name);
    if (ends_with(name, ".json"))
      add_field(all, "content", read_all(f));
    else
      add_safetensors(all, f);
  }
  return hash_hex(all);
}

std::string text_sources_hash(const TextSources& sources) {
  std::string all;
  for (const std::string& w : sources.words) add_field(all, "w", w);
  for (const std::string& p : sources.essay) add_field(all, "p", p);
  // Only when there is one, so that the usual sources keep their hash.
  for (const std::string& h : sources.haystack) add_field(all, "h", h);
  return hash_hex(all);
}

}  // namespace dapx::eval
