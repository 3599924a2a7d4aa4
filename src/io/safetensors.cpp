#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "util/bf16.h"
#include "util/checked_numel.h"
#include "util/error.h"
#include "util/path_exists.h"

namespace dapx {

namespace {

using nlohmann::json;

std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32")
    *out = DType::F32;
  else if (s == "F16")
    *out = DType::F16;
  else if (s == "BF16")
    *out = DType::BF16;
  else
    return false;
  return true;
}

// Closes a file descriptor on scope exit; the mapping stays valid after close().
struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

// Unmaps on scope exit unless released (an open() that fails midway must not leak).
struct MapGuard {
  void* addr = nullptr;
  size_t size = 0;
  ~MapGuard() {
    if (addr) ::munmap(addr, size);
  }
  void* release() { return std::exchange(addr, nullptr); }
};

uint64_t read_le_u64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void write_le_u64(std::ostream& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.write(b, 8);
}

struct ParsedEntry {
  TensorView view;
  uint64_t begin = 0, end = 0;
};

// Validates one header entry against the data section [data, data + data_size).
ParsedEntry parse_entry(const std::string& file, const std::string& name, const json& e,
                        const std::byte* data, uint64_t data_size) {
  auto fail = [&](const std::string& what) {
    throw Error("safetensors file " + file + ": tensor '" + name + "' " + what);
  };
  if (!e.is_object()) fail("has a header entry that is not a JSON object");
  auto dt = e.find("dtype");
  auto sh = e.find("shape");
  auto off = e.find("data_offsets");
  if (dt == e.end() || !dt->is_string()) fail("has no \"dtype\" string");
  if (sh == e.end() || !sh->is_array()) fail("has no \"shape\" array");
  if (off == e.end() || !off->is_array() || off->size() != 2) {
    fail("has no \"data_offsets\" [begin, end] pair");
  }
  ParsedEntry p;
  p.view.name = name;
  if (!parse_dtype(dt->get<std::string>(), &p.view.dtype)) {
    fail("has unsupported dtype " + dt->get<std::string>() + " (supported: F32, F16, BF16)");
  }
  for (const auto& d : *sh) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      fail("has an invalid shape entry " + d.dump());
    p.view.shape.push_back(d.get<int64_t>());
  }
  for (const auto& o : *off) {
    if (!o.is_number_unsigned()) fail("has an invalid data offset " + o.dump());
  }
  p.begin = (*off)[0].get<uint64_t>();
  p.end = (*off)[1].get<uint64_t>();
  if (p.begin > p.end) fail("has data_offsets begin > end");
  if (p.end > data_size) {
    fail("has data_offsets [" + std::to_string(p.begin) + ", " + std::to_string(p.end) +
         "] past the end of the data section (" + std::to_string(data_size) +
         " bytes; file truncated?)");
  }
  uint64_t numel = 0;
  size_t esize = dtype_size(p.view.dtype);
  if (!checked_numel(p.view.shape, &numel) || numel > data_size / esize + 1) {
    fail("has shape " + shape_string(p.view.shape) + " larger than the file");
  }
  if (p.end - p.begin != numel * esize) {
    fail("has " + std::to_string(p.end - p.begin) + " bytes of data but shape " +
         shape_string(p.view.shape) + " x " + dtype_name(p.view.dtype) + " needs " +
         std::to_string(numel * esize));
  }
  p.view.data = data + p.begin;
  p.view.nbytes = static_cast<size_t>(p.end - p.begin);
  return p;
}

// Two tensors sharing bytes would alias silently; empty tensors occupy nothing.
void check_no_overlap(const std::string& file, std::vector<ParsedEntry>& entries) {
  std::sort(entries.begin(), entries.end(),
            [](const ParsedEntry& a, const ParsedEntry& b) { return a.begin < b.begin; });
  const ParsedEntry* prev = nullptr;
  for (const auto& e : entries) {
    if (e.begin == e.end) continue;
    if (prev && e.begin < prev->end) {
      throw Error("safetensors file " + file + ": tensors '" + prev->view.name + "' and '" +
                  e.view.name + "' overlap in the data section");
    }
    prev = &e;
  }
}

namespace {

// nlohmann keeps the last of duplicate keys in an object, silently. In a safetensors header or
// a shard index a repeated name means a corrupt or hand-edited file, so parsing notes the first
// key repeated within one object, and that object's own key ("" at the top level).
struct RepeatedKey {
  std::string key;
  std::string in;
  int depth = -1;  // of the object holding it: 0 is the top level
};

json parse_noting_repeated_keys(const char* begin, const char* end, RepeatedKey* repeated) {
  struct Object {
    std::string name;  // the key it is the value of
    std::set<std::string> keys;
    std::string last_key;
  };
  std::vector<Object> open;
  const json::parser_callback_t note = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open.push_back({open.empty() ? "" : open.back().last_key, {}, {}});
    } else if (event == json::parse_event_t::object_end) {
      open.pop_back();
    } else if (event == json::parse_event_t::key && !open.empty()) {
      Object& o = open.back();
      o.last_key = parsed.get<std::string>();
      if (!o.keys.insert(o.last_key).second && repeated->key.empty())
        *repeated = {o.last_key, o.name, static_cast<int>(open.size()) - 1};
    }
    return true;
  };
  return json::parse(begin, end, note);
}

}  // namespace

std::map<std::string, TensorView> parse_header(const std::filesystem::path& path,
                                               const std::byte* base, size_t size) {
  const std::string file = quoted(path);
  if (size < 8) {
    throw Error("safetensors file " + file + " is " + std::to_string(size) +
                " bytes, too short for the 8-byte header length (truncated?)");
  }
  uint64_t header_len = read_le_u64(base);
  if (header_len > size - 8) {
    throw Error("safetensors file " + file + ": header length " + std::to_string(header_len) +
                " runs past the end of the file (" + std::to_string(size) +
                " bytes; truncated or not a safetensors file?)");
  }
  const char* hbegin = reinterpret_cast<const char*>(base + 8);
  json header;
  RepeatedKey repeated;
  try {
    header = parse_noting_repeated_keys(hbegin, hbegin + header_len, &repeated);
  } catch (const json::exception& e) {
    throw Error("safetensors file " + file + ": invalid header JSON: " + e.what());
  }
  if (repeated.depth == 0)
    throw Error("safetensors file " + file + ": the header names tensor '" + repeated.key +
                "' more than once");
  if (!repeated.key.empty())
    throw Error("safetensors file " + file + ": key '" + repeated.key +
                "' appears twice in one object of the header");
  if (!header.is_object())
    throw Error("safetensors file " + file + ": header is not a JSON object");
  const std::byte* data = base + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::vector<ParsedEntry> entries;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    entries.push_back(parse_entry(file, name, e, data, data_size));
  }
  check_no_overlap(file, entries);
  std::map<std::string, TensorView> out;
  for (auto& e : entries) out.emplace(e.view.name, std::move(e.view));
  return out;
}

void check_tensor_spec(const std::filesystem::path& path, const std::string& name,
                       const std::vector<int64_t>& shape) {
  uint64_t n = 0;
  if (name.empty() || name == "__metadata__") {
    throw Error("cannot write " + quoted(path) + ": invalid tensor name '" + name + "'");
  }
  if (!checked_numel(shape, &n)) {
    throw Error("cannot write " + quoted(path) + ": tensor '" + name + "' has invalid shape " +
                shape_string(shape));
  }
}

}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F16:
      return 2;
    case DType::BF16:
      return 2;
  }
  return 0;
}

std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::map<std::string, TensorView> parse_safetensors(const std::byte* data, size_t size,
                                                    const std::filesystem::path& source) {
  return parse_header(source, data, size);
}

// ---- SafetensorsFile ----

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) {
    throw Error("cannot open safetensors file " + quoted(path) + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) {
    throw Error("cannot stat safetensors file " + quoted(path) + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) throw Error("safetensors path " + quoted(path) + " is not a file");
  const size_t size = static_cast<size_t>(st.st_size);
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  // mmap of an empty file fails; parse_header reports every too-short file the same way.
  if (size < 8) parse_header(path, nullptr, size);
  MapGuard map;
  map.size = size;
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (addr == MAP_FAILED) {
    throw Error("cannot mmap safetensors file " + quoted(path) + ": " + std::strerror(errno));
  }
  map.addr = addr;
  f->tensors_ = parse_header(path, static_cast<const std::byte*>(addr), size);
  // The header is valid JSON (parse_header checked it): its __metadata__, strings to strings.
  const char* header = static_cast<const char*>(addr) + 8;
  const json h = json::parse(header, header + read_le_u64(static_cast<const std::byte*>(addr)));
  if (const auto m = h.find("__metadata__"); m != h.end()) {
    if (!m->is_object())
      throw Error("safetensors file " + quoted(path) + ": __metadata__ is not an object");
    for (const auto& [key, value] : m->items()) {
      if (!value.is_string())
        throw Error("safetensors file " + quoted(path) + ": __metadata__ value of '" + key +
                    "' is not a string");
      f->metadata_[key] = value.get<std::string>();
    }
  }
  f->map_ = map.release();
  f->size_ = size;
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

// ---- WeightStore ----

namespace {

json read_index_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + quoted(path) + ": " + std::strerror(errno));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  RepeatedKey repeated;
  json j;
  try {
    j = parse_noting_repeated_keys(text.data(), text.data() + text.size(), &repeated);
  } catch (const json::exception& e) {
    throw Error("invalid JSON in " + quoted(path) + ": " + e.what());
  }
  if (repeated.depth == 1 && repeated.in == "weight_map")
    throw Error(quoted(path) + ": weight_map names tensor '" + repeated.key +
                "' more than once (which shard holds it?)");
  if (!repeated.key.empty())
    throw Error(quoted(path) + ": key '" + repeated.key + "' appears twice in one object");
  return j;
}

// weight_map: tensor name -> shard file name (relative to the index's directory).
std::map<std::string, std::string> read_weight_map(const std::filesystem::path& index_path) {
  json j = read_index_file(index_path);
  auto wm = j.is_object() ? j.find("weight_map") : j.end();
  if (wm == j.end() || !wm->is_object()) {
    throw Error(quoted(index_path) + " has no \"weight_map\" object");
  }
  std::map<std::string, std::string> out;
  for (const auto& [name, file] : wm->items()) {
    if (!file.is_string()) {
      throw Error(quoted(index_path) + ": weight_map entry for tensor '" + name +
                  "' is not a file name string");
    }
    const std::string shard = file.get<std::string>();
    if (shard.size() > 255) {  // NAME_MAX: no file system holds such a name
      throw Error(quoted(index_path) + ": weight_map entry for tensor '" + name +
                  "' names an invalid shard (a file name of " + std::to_string(shard.size()) +
                  " bytes: '" + shard.substr(0, 40) + "...')");
    }
    if (shard.empty() || std::filesystem::path(shard).has_parent_path()) {
      throw Error(quoted(index_path) + ": weight_map entry for tensor '" + name +
                  "' names an invalid shard '" + shard + "'");
    }
    out.emplace(name, shard);
  }
  return out;
}

}  // namespace

WeightStore WeightStore::open(const std::filesystem::path& model_dir) {
  WeightStore ws;
  ws.dir_ = model_dir;
  const auto single = model_dir / "model.safetensors";
  const auto index = model_dir / "model.safetensors.index.json";
  if (path_exists(single)) {
    ws.files_.push_back(SafetensorsFile::open(single));
    for (const auto& [name, view] : ws.files_.back()->tensors()) ws.index_.emplace(name, &view);
    return ws;
  }
  if (!path_exists(index)) {
    throw Error("no model.safetensors or model.safetensors.index.json in " + quoted(model_dir));
  }
  const auto weight_map = read_weight_map(index);
  std::map<std::string, const SafetensorsFile*> shards;  // each shard opened once
  for (const auto& [name, shard] : weight_map) {
    auto it = shards.find(shard);
    if (it == shards.end()) {
      const auto shard_path = model_dir / shard;
      if (!path_exists(shard_path)) {
        throw Error("shard '" + shard + "' listed in " + quoted(index) + " does not exist");
      }
      ws.files_.push_back(SafetensorsFile::open(shard_path));
      it = shards.emplace(shard, ws.files_.back().get()).first;
    }
    const TensorView* view = it->second->find(name);
    if (!view) {
      throw Error("tensor '" + name + "' listed in " + quoted(index) + " is missing from shard '" +
                  shard + "'");
    }
    ws.index_.emplace(name, view);
  }
  return ws;
}

WeightStore WeightStore::from_views(std::filesystem::path source, std::vector<TensorView> views,
                                    std::set<std::string> mapped,
                                    std::shared_ptr<const void> holder,
                                    std::map<std::string, Int8Matrix> int8) {
  WeightStore ws;
  ws.dir_ = std::move(source);
  ws.holder_ = std::move(holder);
  ws.int8_ = std::move(int8);
  for (TensorView& v : views) {
    if (!mapped.count(v.name)) ws.unmapped_.insert(v.name);
    ws.views_.push_back(std::make_unique<TensorView>(std::move(v)));
    if (!ws.index_.emplace(ws.views_.back()->name, ws.views_.back().get()).second)
      throw Error("duplicate tensor '" + ws.views_.back()->name + "' in " + quoted(ws.dir_));
  }
  for (const auto& [name, m] : ws.int8_)
    if (ws.index_.count(name))
      throw Error("tensor '" + name + "' in " + quoted(ws.dir_) + " is held twice");
  return ws;
}

const Int8Matrix* WeightStore::int8_matrix(const std::string& name) const {
  const auto it = int8_.find(name);
  return it == int8_.end() ? nullptr : &it->second;
}

bool WeightStore::has(const std::string& name) const {
  return index_.count(name) != 0 || int8_.count(name) != 0;
}

const TensorView& WeightStore::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("missing tensor '" + name + "' in " + quoted(dir_));
  return *it->second;
}

const TensorView& WeightStore::get(const std::string& name,
                                   const std::vector<int64_t>& expected_shape) const {
  const TensorView& t = get(name);
  if (t.shape != expected_shape) {
    throw Error("tensor '" + name + "' has shape " + shape_string(t.shape) + ", expected " +
                shape_string(expected_shape) + " (model " + quoted(dir_) + ")");
  }
  return t;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& kv : index_) out.push_back(kv.first);
  return out;
}

void WeightStore::release(const std::string& name) const {
  const TensorView& v = get(name);
  if (unmapped_.count(name)) return;  // memory of its own: dropping pages would zero it
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(v.data), end = begin + v.nbytes;
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  // Only whole pages inside the tensor: a neighbour sharing an edge page keeps it. (A failure
  // only means the memory stays resident, so it is not an error.)
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

size_t WeightStore::total_bytes() const {
  size_t n = 0;
  for (const auto& kv : index_) n += kv.second->nbytes;
  for (const auto& [name, m] : int8_) {
    const int64_t rows = m.shape[0], cols = m.shape[1];
    n += static_cast<size_t>(rows * cols + rows * ((cols + m.block - 1) / m.block) * 4);
  }
  return n;
}

// ---- writing ----

void write_safetensors_streamed(
    const std::filesystem::path& path, const std::vector<TensorSpec>& specs,
    const std::function<void(const TensorSpec&, std::vector<std::byte>&)>& produce,
    const std::map<std::string, std::string>& metadata) {
  // Data is laid out in name order, matching the (sorted) JSON header.
  std::vector<const TensorSpec*> order;
  for (const auto& s : specs) {
    check_tensor_spec(path, s.name, s.shape);
    order.push_back(&s);
  }
  std::sort(order.begin(), order.end(),
            [](const TensorSpec* a, const TensorSpec* b) { return a->name < b->name; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->name == order[i - 1]->name) {
      throw Error("cannot write " + quoted(path) + ": duplicate tensor '" + order[i]->name + "'");
    }
  }
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorSpec* s : order) {
    uint64_t n = 0;
    checked_numel(s->shape, &n);
    const uint64_t bytes = n * dtype_size(s->dtype);
    header[s->name] = {{"dtype", dtype_name(s->dtype)},
                       {"shape", s->shape},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  // Padding keeps the data section 8-byte aligned inside the mapping.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot create " + quoted(path) + ": " + std::strerror(errno));
  write_le_u64(out, text.size());
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  // Double buffering: tensor k+1 is produced while tensor k is written, so generation and
  // disk I/O overlap. The pending write is always joined before its buffer is reused, and
  // std::async's future joins in its destructor if produce() throws.
  std::vector<std::byte> bufs[2];
  std::future<void> pending;
  for (size_t k = 0; k < order.size(); ++k) {
    const TensorSpec* s = order[k];
    std::vector<std::byte>& buf = bufs[k % 2];
    buf.clear();
    produce(*s, buf);
    uint64_t n = 0;
    checked_numel(s->shape, &n);
    if (buf.size() != n * dtype_size(s->dtype)) {
      throw Error("cannot write " + quoted(path) + ": tensor '" + s->name + "' has " +
                  std::to_string(buf.size()) + " bytes, shape " + shape_string(s->shape) + " x " +
                  dtype_name(s->dtype) + " needs " + std::to_string(n * dtype_size(s->dtype)));
    }
    if (pending.valid()) pending.get();
    pending = std::async(std::launch::async, [&out, &buf] {
      out.write(reinterpret_cast<const char*>(buf.data()),
                static_cast<std::streamsize>(buf.size()));
    });
  }
  if (pending.valid()) pending.get();
  out.flush();
  if (!out) throw Error("error writing " + quoted(path) + " (disk full?)");
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  std::map<std::string, const TensorData*> by_name;
  for (const auto& t : tensors) {
    specs.push_back({t.name, t.dtype, t.shape});
    by_name.emplace(t.name, &t);
  }
  write_safetensors_streamed(
      path, specs,
      [&](const TensorSpec& s, std::vector<std::byte>& out) {
        const auto& b = by_name.at(s.name)->bytes;
        out.assign(b.begin(), b.end());
      },
      metadata);
}

// ---- conversions ----

namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

uint16_t float_to_bf16(float f) { return f32_to_bf16(f); }

float bf16_to_float(uint16_t h) { return bf16_to_f32(h); }

uint16_t float_to_f16(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf (or is inf)
  const int exp = static_cast<int>(abs >> 23) - 127;
  uint32_t mant = abs & 0x7fffffu;
  if (exp >= -14) {
    // Normal half: keep 10 mantissa bits, round the dropped 13 to nearest even. A carry out
    // of the mantissa increments the exponent, which is exactly right.
    uint32_t h = (static_cast<uint32_t>(exp + 15) << 10) | (mant >> 13);
    const uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
    return sign | static_cast<uint16_t>(h);
  }
  if (exp < -25) return sign;  // below half the smallest subnormal: rounds to zero
  // Subnormal half: value = m * 2^-24. Shift the full 24-bit significand down accordingly.
  mant |= 0x800000u;
  const int shift = -exp - 1;  // 14..24 bits dropped (exp=-15 -> 14)
  uint32_t h = mant >> shift;
  const uint32_t rest = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (h & 1u))) ++h;
  return sign | static_cast<uint16_t>(h);
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    const float v = std::ldexp(static_cast<float>(mant), -24);  // subnormal (or zero)
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

std::vector<float> to_float_vector(const TensorView& t) {
  const size_t n = static_cast<size_t>(t.numel());
  if (n * dtype_size(t.dtype) != t.nbytes) {
    throw Error("tensor '" + t.name + "': byte size does not match its shape and dtype");
  }
  std::vector<float> out(n);
  if (t.dtype == DType::F32) {
    if (n) std::memcpy(out.data(), t.data, n * 4);  // memcpy: the data may be unaligned
    return out;
  }
  const bool bf16 = t.dtype == DType::BF16;
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, t.data + 2 * i, 2);
    out[i] = bf16 ? bf16_to_float(h) : f16_to_float(h);
  }
  return out;
}

}  // namespace dapx
