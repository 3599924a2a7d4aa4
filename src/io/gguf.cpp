#include "io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "util/checked_numel.h"
#include "util/error.h"

namespace dapx {

namespace {

constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;
const char* const kAlignmentKey = "general.alignment";

std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool is_unsigned_kind(GgufValueType t) {
  return t == GgufValueType::U8 || t == GgufValueType::U16 || t == GgufValueType::U32 ||
         t == GgufValueType::U64 || t == GgufValueType::Bool;
}
bool is_signed_kind(GgufValueType t) {
  return t == GgufValueType::I8 || t == GgufValueType::I16 || t == GgufValueType::I32 ||
         t == GgufValueType::I64;
}
bool is_float_kind(GgufValueType t) { return t == GgufValueType::F32 || t == GgufValueType::F64; }
bool is_integer(GgufValueType t) {
  return t != GgufValueType::Bool && (is_unsigned_kind(t) || is_signed_kind(t));
}

// Bytes one element of a scalar type takes in the file (a string: at least its 8-byte length).
uint64_t element_min_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::Bool:
      return 1;
    case GgufValueType::U16:
    case GgufValueType::I16:
      return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32:
      return 4;
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64:
    case GgufValueType::String:
      return 8;
    case GgufValueType::Array:
      return 12;
  }
  return 1;
}

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::F64); }

uint64_t unsigned_max(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
      return 0xff;
    case GgufValueType::U16:
      return 0xffff;
    case GgufValueType::U32:
      return 0xffffffffu;
    case GgufValueType::Bool:
      return 1;
    default:
      return std::numeric_limits<uint64_t>::max();
  }
}

std::pair<int64_t, int64_t> signed_range(GgufValueType t) {
  switch (t) {
    case GgufValueType::I8:
      return {-128, 127};
    case GgufValueType::I16:
      return {-32768, 32767};
    case GgufValueType::I32:
      return {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
    default:
      return {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
  }
}

GgufValue scalar(GgufValueType t) {
  GgufValue v;
  v.type = t;
  v.element_type = t;
  return v;
}

// Bounds-checked little-endian reads over [base, base + size). Every failure names the file and
// what was being read.
class Reader {
 public:
  Reader(const std::byte* base, uint64_t size, std::string file)
      : base_(base), size_(size), file_(std::move(file)) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("GGUF file " + file_ + ": " + what);
  }

  void need(uint64_t n, const std::string& what) const {
    if (n > remaining()) {
      fail("truncated while reading " + what + " (needs " + std::to_string(n) +
           " bytes at offset " + std::to_string(pos_) + ", the file has " + std::to_string(size_) +
           ")");
    }
  }
  uint64_t read_le(int bytes, const std::string& what) {
    need(static_cast<uint64_t>(bytes), what);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(base_[pos_ + i]);
    pos_ += static_cast<uint64_t>(bytes);
    return v;
  }
  uint32_t u32(const std::string& what) { return static_cast<uint32_t>(read_le(4, what)); }
  uint64_t u64(const std::string& what) { return read_le(8, what); }
  std::string string(const std::string& what) {
    const uint64_t len = u64("the length of " + what);
    if (len > remaining()) {
      fail("string length " + std::to_string(len) + " of " + what + " at offset " +
           std::to_string(pos_ - 8) + " runs past the end of the file (" +
           std::to_string(remaining()) + " bytes left)");
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }
  // An element count that must fit in the rest of the file at `min_bytes` each.
  void check_count(uint64_t count, uint64_t min_bytes, const std::string& what) const {
    if (count > remaining() / min_bytes) {
      fail(what + " " + std::to_string(count) + " is impossible: " + std::to_string(count) +
           " entries of at least " + std::to_string(min_bytes) + " bytes do not fit in the " +
           std::to_string(remaining()) + " bytes left in the file");
    }
  }

 private:
  const std::byte* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string file_;
};

void read_element(Reader& r, GgufValueType t, GgufValue& v, const std::string& what) {
  switch (t) {
    case GgufValueType::U8:
      v.uints.push_back(r.read_le(1, what));
      return;
    case GgufValueType::U16:
      v.uints.push_back(r.read_le(2, what));
      return;
    case GgufValueType::U32:
      v.uints.push_back(r.read_le(4, what));
      return;
    case GgufValueType::U64:
      v.uints.push_back(r.read_le(8, what));
      return;
    case GgufValueType::I8:
      v.ints.push_back(static_cast<int8_t>(r.read_le(1, what)));
      return;
    case GgufValueType::I16:
      v.ints.push_back(static_cast<int16_t>(r.read_le(2, what)));
      return;
    case GgufValueType::I32:
      v.ints.push_back(static_cast<int32_t>(r.read_le(4, what)));
      return;
    case GgufValueType::I64:
      v.ints.push_back(static_cast<int64_t>(r.read_le(8, what)));
      return;
    case GgufValueType::F32: {
      const uint32_t bits = static_cast<uint32_t>(r.read_le(4, what));
      float f;
      std::memcpy(&f, &bits, 4);
      v.floats.push_back(f);
      return;
    }
    case GgufValueType::F64: {
      const uint64_t bits = r.read_le(8, what);
      double f;
      std::memcpy(&f, &bits, 8);
      v.floats.push_back(f);
      return;
    }
    case GgufValueType::Bool: {
      const uint64_t b = r.read_le(1, what);
      if (b > 1) r.fail(what + " is a bool of value " + std::to_string(b) + " (must be 0 or 1)");
      v.uints.push_back(b);
      return;
    }
    case GgufValueType::String:
      v.strings.push_back(r.string(what));
      return;
    case GgufValueType::Array:
      break;
  }
  r.fail(what + ": nested arrays are not supported");
}

GgufValue read_value(Reader& r, const std::string& key) {
  const std::string what = "the value of key '" + key + "'";
  const uint32_t type = r.u32("the value type of key '" + key + "'");
  if (!known_value_type(type))
    r.fail("key '" + key + "' has unknown value type " + std::to_string(type));
  const auto t = static_cast<GgufValueType>(type);
  if (t != GgufValueType::Array) {
    GgufValue v = scalar(t);
    read_element(r, t, v, what);
    return v;
  }
  const uint32_t elem = r.u32("the element type of array key '" + key + "'");
  if (!known_value_type(elem))
    r.fail("array key '" + key + "' has unknown element type " + std::to_string(elem));
  const auto et = static_cast<GgufValueType>(elem);
  if (et == GgufValueType::Array)
    r.fail("key '" + key + "' is an array of arrays (nested arrays are not supported)");
  const uint64_t n = r.u64("the length of array key '" + key + "'");
  r.check_count(n, element_min_bytes(et), "the length of array key '" + key + "'");
  GgufValue v;
  v.type = GgufValueType::Array;
  v.element_type = et;
  const size_t count = static_cast<size_t>(n);
  if (is_unsigned_kind(et))
    v.uints.reserve(count);
  else if (is_signed_kind(et))
    v.ints.reserve(count);
  else if (is_float_kind(et))
    v.floats.reserve(count);
  else
    v.strings.reserve(count);
  for (uint64_t i = 0; i < n; ++i)
    read_element(r, et, v, "element " + std::to_string(i) + " of " + what);
  return v;
}

// Bytes of a tensor of `shape` (row-major) and `type`, overflow-checked; the error text (after
// "tensor 'NAME' ") on failure.
bool tensor_bytes(GgmlType type, const std::vector<int64_t>& shape, uint64_t* out,
                  std::string* error) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  uint64_t numel = 0;
  if (!checked_numel(shape, &numel)) {
    *error = "has shape " + shape_string(shape) + " whose element count overflows";
    return false;
  }
  const int64_t row = shape.back();
  if (row % info.block_size != 0) {
    *error = "has row length " + std::to_string(row) + ", not a multiple of " +
             std::to_string(info.block_size) + ", the block size of " + info.name;
    return false;
  }
  const uint64_t blocks_per_row = static_cast<uint64_t>(row / info.block_size);
  if (blocks_per_row > std::numeric_limits<size_t>::max() / info.block_bytes) {
    *error = "has row length " + std::to_string(row) + ", too large";
    return false;
  }
  const uint64_t row_bytes = blocks_per_row * info.block_bytes;
  if (numel == 0) {
    *out = 0;
    return true;
  }
  const uint64_t rows = numel / static_cast<uint64_t>(row);
  if (row_bytes != 0 && rows > std::numeric_limits<uint64_t>::max() / row_bytes) {
    *error = "has shape " + shape_string(shape) + " whose byte size overflows";
    return false;
  }
  *out = rows * row_bytes;
  return true;
}

uint64_t align_up(uint64_t x, uint64_t alignment) {
  const uint64_t rem = x % alignment;
  return rem == 0 ? x : x + (alignment - rem);
}

uint32_t alignment_of(const GgufMetadata& meta,
                      const std::function<void(const std::string&)>& fail) {
  const GgufValue* v = meta.find(kAlignmentKey);
  if (!v) return kDefaultAlignment;
  if (v->type != GgufValueType::U32) {
    fail(std::string("key '") + kAlignmentKey + "' has type " + v->type_name() +
         ", expected uint32");
  }
  const uint64_t a = v->uints[0];
  if (a == 0 || (a & (a - 1)) != 0) {
    fail(std::string("key '") + kAlignmentKey + "' is " + std::to_string(a) +
         ", not a power of two");
  }
  return static_cast<uint32_t>(a);
}

struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

// ---- GgufValue ----

std::string gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8:
      return "uint8";
    case GgufValueType::I8:
      return "int8";
    case GgufValueType::U16:
      return "uint16";
    case GgufValueType::I16:
      return "int16";
    case GgufValueType::U32:
      return "uint32";
    case GgufValueType::I32:
      return "int32";
    case GgufValueType::F32:
      return "float32";
    case GgufValueType::Bool:
      return "bool";
    case GgufValueType::String:
      return "string";
    case GgufValueType::Array:
      return "array";
    case GgufValueType::U64:
      return "uint64";
    case GgufValueType::I64:
      return "int64";
    case GgufValueType::F64:
      return "float64";
  }
  return "type " + std::to_string(static_cast<uint32_t>(type));
}

size_t GgufValue::size() const {
  return uints.size() + ints.size() + floats.size() + strings.size();
}

std::string GgufValue::type_name() const {
  if (is_array()) return "array of " + gguf_value_type_name(element_type);
  return gguf_value_type_name(type);
}

namespace {

GgufValue uint_scalar(GgufValueType t, uint64_t v) {
  GgufValue out = scalar(t);
  out.uints.push_back(v);
  return out;
}
GgufValue int_scalar(GgufValueType t, int64_t v) {
  GgufValue out = scalar(t);
  out.ints.push_back(v);
  return out;
}
GgufValue float_scalar(GgufValueType t, double v) {
  GgufValue out = scalar(t);
  out.floats.push_back(v);
  return out;
}

}  // namespace

GgufValue GgufValue::u8(uint8_t v) { return uint_scalar(GgufValueType::U8, v); }
GgufValue GgufValue::i8(int8_t v) { return int_scalar(GgufValueType::I8, v); }
GgufValue GgufValue::u16(uint16_t v) { return uint_scalar(GgufValueType::U16, v); }
GgufValue GgufValue::i16(int16_t v) { return int_scalar(GgufValueType::I16, v); }
GgufValue GgufValue::u32(uint32_t v) { return uint_scalar(GgufValueType::U32, v); }
GgufValue GgufValue::i32(int32_t v) { return int_scalar(GgufValueType::I32, v); }
GgufValue GgufValue::u64(uint64_t v) { return uint_scalar(GgufValueType::U64, v); }
GgufValue GgufValue::i64(int64_t v) { return int_scalar(GgufValueType::I64, v); }
GgufValue GgufValue::f32(float v) { return float_scalar(GgufValueType::F32, v); }
GgufValue GgufValue::f64(double v) { return float_scalar(GgufValueType::F64, v); }
GgufValue GgufValue::boolean(bool v) { return uint_scalar(GgufValueType::Bool, v ? 1 : 0); }
GgufValue GgufValue::string(std::string v) {
  GgufValue out = scalar(GgufValueType::String);
  out.strings.push_back(std::move(v));
  return out;
}

GgufValue GgufValue::uint_array(GgufValueType element_type, std::vector<uint64_t> v) {
  if (!is_unsigned_kind(element_type)) {
    throw Error("an unsigned GGUF array cannot have elements of type " +
                gguf_value_type_name(element_type));
  }
  for (uint64_t x : v) {
    if (x > unsigned_max(element_type)) {
      throw Error("value " + std::to_string(x) + " does not fit a GGUF " +
                  gguf_value_type_name(element_type));
    }
  }
  GgufValue out;
  out.type = GgufValueType::Array;
  out.element_type = element_type;
  out.uints = std::move(v);
  return out;
}

GgufValue GgufValue::int_array(GgufValueType element_type, std::vector<int64_t> v) {
  if (!is_signed_kind(element_type)) {
    throw Error("a signed GGUF array cannot have elements of type " +
                gguf_value_type_name(element_type));
  }
  const auto [lo, hi] = signed_range(element_type);
  for (int64_t x : v) {
    if (x < lo || x > hi) {
      throw Error("value " + std::to_string(x) + " does not fit a GGUF " +
                  gguf_value_type_name(element_type));
    }
  }
  GgufValue out;
  out.type = GgufValueType::Array;
  out.element_type = element_type;
  out.ints = std::move(v);
  return out;
}

GgufValue GgufValue::float_array(GgufValueType element_type, std::vector<double> v) {
  if (!is_float_kind(element_type)) {
    throw Error("a float GGUF array cannot have elements of type " +
                gguf_value_type_name(element_type));
  }
  GgufValue out;
  out.type = GgufValueType::Array;
  out.element_type = element_type;
  out.floats = std::move(v);
  if (element_type == GgufValueType::F32)
    for (double& x : out.floats) x = static_cast<float>(x);
  return out;
}

GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue out;
  out.type = GgufValueType::Array;
  out.element_type = GgufValueType::String;
  out.strings = std::move(v);
  return out;
}

bool operator==(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.element_type != b.element_type) return false;
  if (a.uints != b.uints || a.ints != b.ints || a.strings != b.strings) return false;
  if (a.floats.size() != b.floats.size()) return false;
  for (size_t i = 0; i < a.floats.size(); ++i) {
    // Bitwise, so that NaN equals itself and a round trip compares equal.
    if (std::memcmp(&a.floats[i], &b.floats[i], sizeof(double)) != 0) return false;
  }
  return true;
}

// ---- GgufMetadata ----

GgufMetadata::GgufMetadata(GgufMetadataList entries, std::string source)
    : entries_(std::move(entries)), source_(std::move(source)) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (!index_.emplace(entries_[i].first, i).second)
      fail("metadata key '" + entries_[i].first + "' appears more than once");
  }
}

void GgufMetadata::fail(const std::string& what) const {
  throw Error("GGUF file " + source_ + ": " + what);
}

const GgufValue* GgufMetadata::find(const std::string& key) const {
  const auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const GgufValue& GgufMetadata::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("missing key '" + key + "'");
  return *v;
}

std::string GgufMetadata::get_string(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValueType::String)
    fail("key '" + key + "' has type " + v.type_name() + ", expected string");
  return v.strings[0];
}

int64_t GgufMetadata::get_int(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!is_integer(v.type))
    fail("key '" + key + "' has type " + v.type_name() + ", expected an integer");
  if (!v.ints.empty()) return v.ints[0];
  if (v.uints[0] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail("key '" + key + "' has value " + std::to_string(v.uints[0]) + ", out of range for int64");
  return static_cast<int64_t>(v.uints[0]);
}

uint32_t GgufMetadata::get_u32(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!is_integer(v.type))
    fail("key '" + key + "' has type " + v.type_name() + ", expected uint32");
  const bool fits = v.ints.empty()
                        ? v.uints[0] <= 0xffffffffu
                        : v.ints[0] >= 0 && static_cast<uint64_t>(v.ints[0]) <= 0xffffffffu;
  if (!fits) {
    fail("key '" + key + "' has value " +
         (v.ints.empty() ? std::to_string(v.uints[0]) : std::to_string(v.ints[0])) +
         ", out of range for uint32");
  }
  return static_cast<uint32_t>(v.ints.empty() ? v.uints[0] : static_cast<uint64_t>(v.ints[0]));
}

double GgufMetadata::get_float(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!is_float_kind(v.type))
    fail("key '" + key + "' has type " + v.type_name() + ", expected float32 or float64");
  return v.floats[0];
}

bool GgufMetadata::get_bool(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufValueType::Bool)
    fail("key '" + key + "' has type " + v.type_name() + ", expected bool");
  return v.uints[0] != 0;
}

const std::vector<std::string>& GgufMetadata::get_string_array(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!v.is_array() || v.element_type != GgufValueType::String)
    fail("key '" + key + "' has type " + v.type_name() + ", expected array of string");
  return v.strings;
}

std::vector<int64_t> GgufMetadata::get_int_array(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!v.is_array() || !is_integer(v.element_type))
    fail("key '" + key + "' has type " + v.type_name() + ", expected array of integers");
  if (!v.uints.empty() || v.ints.empty()) {
    std::vector<int64_t> out;
    out.reserve(v.uints.size());
    for (uint64_t x : v.uints) {
      if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail("key '" + key + "' has element " + std::to_string(x) + ", out of range for int64");
      out.push_back(static_cast<int64_t>(x));
    }
    return out;
  }
  return v.ints;
}

std::vector<double> GgufMetadata::get_float_array(const std::string& key) const {
  const GgufValue& v = get(key);
  if (!v.is_array() || !is_float_kind(v.element_type)) {
    fail("key '" + key + "' has type " + v.type_name() + ", expected array of float32 or float64");
  }
  return v.floats;
}

// ---- tensors ----

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t GgufTensor::num_rows() const {
  const int64_t row = row_length();
  return row == 0 ? 0 : numel() / row;
}

const GgufTensor* GgufContents::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufContents::get(const std::string& name) const {
  const GgufTensor* t = find(name);
  if (!t) throw Error("GGUF file " + metadata_.source() + ": missing tensor '" + name + "'");
  return *t;
}

// ---- parsing ----

GgufContents parse_gguf(const std::byte* data, size_t size, const std::filesystem::path& source) {
  const std::string file = quoted(source);
  Reader r(data, size, file);
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) {
    std::string got;
    for (size_t i = 0; i < std::min<size_t>(size, 4); ++i) {
      const auto c = static_cast<unsigned char>(data[i]);
      got += (c >= 0x20 && c < 0x7f)
                 ? std::string(1, static_cast<char>(c))
                 : "\\x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15];
    }
    r.fail("bad magic '" + got + "' (expected 'GGUF'; not a GGUF file, or truncated)");
  }
  r.read_le(4, "the magic");
  GgufContents out;
  const uint32_t version = r.u32("the version");
  if (version != 2 && version != 3) {
    if (version != 0 && (version & 0xffffu) == 0) {
      r.fail("unsupported version " + std::to_string(version) +
             " (looks byte-swapped: big-endian GGUF files are not supported)");
    }
    r.fail("unsupported version " + std::to_string(version) + " (supported: 2, 3)");
  }
  out.version_ = version;
  const uint64_t n_tensors = r.u64("the tensor count");
  const uint64_t n_kv = r.u64("the metadata count");
  // A metadata entry takes at least 13 bytes (key length, value type, one byte), a tensor info 32
  // (name length, n_dims, one dim, type, offset).
  r.check_count(n_kv, 13, "metadata count");
  r.check_count(n_tensors, 32, "tensor count");

  GgufMetadataList entries;
  entries.reserve(static_cast<size_t>(n_kv));
  std::set<std::string> keys;
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.string("the key of metadata entry " + std::to_string(i));
    if (key.empty()) r.fail("metadata entry " + std::to_string(i) + " has an empty key");
    if (!keys.insert(key).second) r.fail("metadata key '" + key + "' appears more than once");
    GgufValue v = read_value(r, key);
    entries.emplace_back(std::move(key), std::move(v));
  }
  out.metadata_ = GgufMetadata(std::move(entries), file);
  out.alignment_ = alignment_of(out.metadata_, [&](const std::string& m) { r.fail(m); });

  struct Info {
    GgufTensor t;
    uint64_t nbytes = 0;
  };
  std::vector<Info> infos;
  infos.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    Info info;
    GgufTensor& t = info.t;
    t.name = r.string("the name of tensor " + std::to_string(i));
    if (t.name.empty()) r.fail("tensor " + std::to_string(i) + " has an empty name");
    const std::string tn = "tensor '" + t.name + "'";
    if (out.index_.count(t.name)) r.fail("tensor name '" + t.name + "' appears more than once");
    out.index_.emplace(t.name, infos.size());
    const uint32_t n_dims = r.u32("the dimension count of " + tn);
    if (n_dims == 0 || n_dims > kMaxDims) {
      r.fail(tn + " has " + std::to_string(n_dims) + " dimensions (supported: 1 to " +
             std::to_string(kMaxDims) + ")");
    }
    t.shape.assign(n_dims, 0);
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = r.u64("the dimensions of " + tn);
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        r.fail(tn + " has dimension " + std::to_string(dim) + ", too large");
      t.shape[n_dims - 1 - d] = static_cast<int64_t>(dim);  // the file stores innermost first
    }
    const uint32_t type = r.u32("the type of " + tn);
    const GgmlTypeInfo* ti = find_ggml_type(type);
    if (!ti) r.fail(tn + " has unknown tensor type " + std::to_string(type));
    t.type = ti->type;
    t.offset = r.u64("the offset of " + tn);
    if (t.offset % out.alignment_ != 0) {
      r.fail(tn + " has offset " + std::to_string(t.offset) + ", not a multiple of the alignment " +
             std::to_string(out.alignment_));
    }
    std::string error;
    if (!tensor_bytes(t.type, t.shape, &info.nbytes, &error)) r.fail(tn + " " + error);
    infos.push_back(std::move(info));
  }

  const uint64_t data_start = align_up(r.pos(), out.alignment_);
  if (n_tensors > 0 && data_start > size) {
    r.fail("the file ends before its data section (at offset " + std::to_string(data_start) +
           ", the file has " + std::to_string(size) + " bytes; truncated?)");
  }
  out.data_offset_ = data_start;
  const uint64_t data_size = data_start <= size ? size - data_start : 0;
  for (Info& info : infos) {
    GgufTensor& t = info.t;
    const std::string tn = "tensor '" + t.name + "'";
    if (t.offset > data_size) {
      r.fail(tn + " has offset " + std::to_string(t.offset) +
             " past the end of the data section (" + std::to_string(data_size) +
             " bytes; truncated?)");
    }
    if (info.nbytes > data_size - t.offset) {
      r.fail(tn + " of shape " + shape_string(t.shape) + " " + ggml_type_name(t.type) + " needs " +
             std::to_string(info.nbytes) + " bytes at offset " + std::to_string(t.offset) +
             ", past the end of the data section (" + std::to_string(data_size) +
             " bytes; truncated?)");
    }
    t.nbytes = static_cast<size_t>(info.nbytes);
    t.data = t.nbytes ? data + data_start + t.offset : nullptr;
  }

  // Two tensors sharing bytes would alias silently; empty tensors occupy nothing.
  std::vector<const Info*> by_offset;
  for (const Info& info : infos)
    if (info.nbytes) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Info* a, const Info* b) { return a->t.offset < b->t.offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const Info* prev = by_offset[i - 1];
    if (by_offset[i]->t.offset < prev->t.offset + prev->nbytes) {
      r.fail("tensors '" + prev->t.name + "' and '" + by_offset[i]->t.name +
             "' overlap in the data section");
    }
  }
  out.tensors_.reserve(infos.size());
  for (Info& info : infos) out.tensors_.push_back(std::move(info.t));
  return out;
}

// ---- GgufFile ----

std::unique_ptr<GgufFile> GgufFile::open(const std::filesystem::path& path) {
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) throw Error("cannot open GGUF file " + quoted(path) + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0)
    throw Error("cannot stat GGUF file " + quoted(path) + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error("GGUF path " + quoted(path) + " is not a file");
  const size_t size = static_cast<size_t>(st.st_size);
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  if (size == 0) {
    static_cast<GgufContents&>(*f) = parse_gguf(nullptr, 0, path);  // throws: bad magic
  }
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (addr == MAP_FAILED)
    throw Error("cannot mmap GGUF file " + quoted(path) + ": " + std::strerror(errno));
  // Owned by f from here: its destructor unmaps, also when parsing throws.
  f->map_ = addr;
  f->size_ = size;
  static_cast<GgufContents&>(*f) = parse_gguf(static_cast<const std::byte*>(addr), size, path);
  return f;
}

GgufFile::~GgufFile() {
  if (map_) ::munmap(map_, size_);
}

void dequantize_rows(const GgufTensor& t, int64_t first, int64_t count, float* out) {
  const int64_t rows = t.num_rows();
  if (first < 0 || count < 0 || first > rows || count > rows - first) {
    throw Error("tensor '" + t.name + "': rows [" + std::to_string(first) + ", " +
                std::to_string(first) + "+" + std::to_string(count) + ") out of range (" +
                std::to_string(rows) + " rows)");
  }
  if (count == 0) return;
  const int64_t row = t.row_length();
  const size_t row_bytes = ggml_row_bytes(t.type, row);
  dequantize_row(t.type, t.data + static_cast<size_t>(first) * row_bytes, out, count * row);
}

std::vector<float> gguf_tensor_to_float(const GgufTensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  dequantize_rows(t, 0, t.num_rows(), out.data());
  return out;
}

// ---- writer ----

namespace {

class Writer {
 public:
  explicit Writer(std::ostream& out) : out_(out) {}
  void le(uint64_t v, int bytes) {
    char b[8];
    for (int i = 0; i < bytes; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out_.write(b, bytes);
    pos_ += static_cast<uint64_t>(bytes);
  }
  void raw(const void* p, size_t n) {
    out_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    pos_ += n;
  }
  void string(const std::string& s) {
    le(s.size(), 8);
    raw(s.data(), s.size());
  }
  void pad(uint64_t alignment) {
    static const char zeros[256] = {};
    uint64_t n = align_up(pos_, alignment) - pos_;
    while (n > 0) {
      const uint64_t k = std::min<uint64_t>(n, sizeof zeros);
      raw(zeros, static_cast<size_t>(k));
      n -= k;
    }
  }
  uint64_t pos() const { return pos_; }

 private:
  std::ostream& out_;
  uint64_t pos_ = 0;
};

void write_element(Writer& w, GgufValueType t, const GgufValue& v, size_t i) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::Bool:
      w.le(v.uints.at(i), 1);
      return;
    case GgufValueType::U16:
      w.le(v.uints.at(i), 2);
      return;
    case GgufValueType::U32:
      w.le(v.uints.at(i), 4);
      return;
    case GgufValueType::U64:
      w.le(v.uints.at(i), 8);
      return;
    case GgufValueType::I8:
      w.le(static_cast<uint64_t>(v.ints.at(i)), 1);
      return;
    case GgufValueType::I16:
      w.le(static_cast<uint64_t>(v.ints.at(i)), 2);
      return;
    case GgufValueType::I32:
      w.le(static_cast<uint64_t>(v.ints.at(i)), 4);
      return;
    case GgufValueType::I64:
      w.le(static_cast<uint64_t>(v.ints.at(i)), 8);
      return;
    case GgufValueType::F32: {
      const float f = static_cast<float>(v.floats.at(i));
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      w.le(bits, 4);
      return;
    }
    case GgufValueType::F64: {
      uint64_t bits;
      std::memcpy(&bits, &v.floats.at(i), 8);
      w.le(bits, 8);
      return;
    }
    case GgufValueType::String:
      w.string(v.strings.at(i));
      return;
    case GgufValueType::Array:
      break;
  }
  throw Error("nested GGUF arrays cannot be written");
}

// The value's storage matches its declared type (a hand-built GgufValue may not).
void check_value(const std::string& key, const GgufValue& v, const std::string& where) {
  const GgufValueType et = v.element_type;
  auto bad = [&](const std::string& what) {
    throw Error("cannot write " + where + ": key '" + key + "' " + what);
  };
  if (!known_value_type(static_cast<uint32_t>(v.type)) ||
      !known_value_type(static_cast<uint32_t>(et)))
    bad("has an unknown value type");
  if (!v.is_array() && et != v.type) bad("is a scalar whose element type differs from its type");
  if (et == GgufValueType::Array) bad("is a nested array (not supported)");
  const size_t n = v.size();
  const bool ok = is_unsigned_kind(et) ? v.uints.size() == n
                  : is_signed_kind(et) ? v.ints.size() == n
                  : is_float_kind(et)  ? v.floats.size() == n
                                       : v.strings.size() == n;
  if (!ok) bad("holds elements of another kind than " + gguf_value_type_name(et));
  if (!v.is_array() && n != 1) bad("is a scalar with " + std::to_string(n) + " values");
  for (uint64_t x : v.uints)
    if (x > unsigned_max(et)) bad("holds " + std::to_string(x) + ", too large for its type");
  const auto [lo, hi] = signed_range(et);
  for (int64_t x : v.ints)
    if (x < lo || x > hi) bad("holds " + std::to_string(x) + ", out of range for its type");
}

struct Layout {
  uint32_t alignment = kDefaultAlignment;
  std::vector<uint64_t> offsets;
  std::vector<uint64_t> sizes;
};

Layout plan(const std::string& where, const GgufMetadataList& metadata,
            const std::vector<GgufTensorSpec>& specs) {
  Layout layout;
  std::set<std::string> keys;
  for (const auto& [key, value] : metadata) {
    if (key.empty()) throw Error("cannot write " + where + ": empty metadata key");
    if (!keys.insert(key).second)
      throw Error("cannot write " + where + ": metadata key '" + key + "' appears twice");
    check_value(key, value, where);
  }
  const GgufMetadata meta(metadata, where);
  layout.alignment = alignment_of(
      meta, [&](const std::string& m) { throw Error("cannot write " + where + ": " + m); });
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const GgufTensorSpec& s : specs) {
    auto bad = [&](const std::string& what) {
      throw Error("cannot write " + where + ": tensor '" + s.name + "' " + what);
    };
    if (s.name.empty()) throw Error("cannot write " + where + ": a tensor has an empty name");
    if (!names.insert(s.name).second) bad("appears twice");
    if (s.shape.empty() || s.shape.size() > kMaxDims)
      bad("has " + std::to_string(s.shape.size()) + " dimensions (supported: 1 to 4)");
    if (!find_ggml_type(static_cast<uint32_t>(s.type)))
      bad("has unknown type " + std::to_string(static_cast<uint32_t>(s.type)));
    for (int64_t d : s.shape)
      if (d < 0) bad("has a negative dimension in " + shape_string(s.shape));
    uint64_t nbytes = 0;
    std::string error;
    if (!tensor_bytes(s.type, s.shape, &nbytes, &error)) bad(error);
    layout.offsets.push_back(offset);
    layout.sizes.push_back(nbytes);
    offset = align_up(offset + nbytes, layout.alignment);
  }
  return layout;
}

void write_header(Writer& w, const GgufMetadataList& metadata,
                  const std::vector<GgufTensorSpec>& specs, const Layout& layout) {
  w.raw("GGUF", 4);
  w.le(3, 4);
  w.le(specs.size(), 8);
  w.le(metadata.size(), 8);
  for (const auto& [key, v] : metadata) {
    w.string(key);
    w.le(static_cast<uint32_t>(v.type), 4);
    if (v.is_array()) {
      w.le(static_cast<uint32_t>(v.element_type), 4);
      w.le(v.size(), 8);
    }
    for (size_t i = 0; i < v.size(); ++i) write_element(w, v.element_type, v, i);
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    const GgufTensorSpec& s = specs[i];
    w.string(s.name);
    w.le(s.shape.size(), 4);
    for (auto it = s.shape.rbegin(); it != s.shape.rend(); ++it)
      w.le(static_cast<uint64_t>(*it), 8);
    w.le(static_cast<uint32_t>(s.type), 4);
    w.le(layout.offsets[i], 8);
  }
  w.pad(layout.alignment);
}

void write_all(std::ostream& out, const std::string& where, const GgufMetadataList& metadata,
               const std::vector<GgufTensorSpec>& specs,
               const std::function<void(const GgufTensorSpec&, std::vector<std::byte>&)>& produce) {
  const Layout layout = plan(where, metadata, specs);
  Writer w(out);
  write_header(w, metadata, specs, layout);
  std::vector<std::byte> bytes;
  for (size_t i = 0; i < specs.size(); ++i) {
    bytes.clear();
    produce(specs[i], bytes);
    if (bytes.size() != layout.sizes[i]) {
      throw Error("cannot write " + where + ": tensor '" + specs[i].name + "' has " +
                  std::to_string(bytes.size()) + " bytes, its shape " +
                  shape_string(specs[i].shape) + " x " + ggml_type_name(specs[i].type) + " needs " +
                  std::to_string(layout.sizes[i]));
    }
    w.raw(bytes.data(), bytes.size());
    w.pad(layout.alignment);  // after the last tensor too: ggml reads the padded data section
    if (!out) throw Error("cannot write " + where + ": write failed");
  }
}

std::vector<GgufTensorSpec> specs_of(const std::vector<GgufTensorData>& tensors) {
  std::vector<GgufTensorSpec> specs;
  specs.reserve(tensors.size());
  for (const GgufTensorData& t : tensors) specs.push_back({t.name, t.type, t.shape});
  return specs;
}

void write_file(
    const std::filesystem::path& path, const GgufMetadataList& metadata,
    const std::vector<GgufTensorSpec>& specs,
    const std::function<void(const GgufTensorSpec&, std::vector<std::byte>&)>& produce) {
  const std::string where = quoted(path);
  plan(where, metadata, specs);  // fail before creating the file
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot create GGUF file " + where + ": " + std::strerror(errno));
  write_all(out, where, metadata, specs, produce);
  out.close();
  if (!out) throw Error("cannot write GGUF file " + where + " (disk full?)");
}

}  // namespace

void write_gguf(const std::filesystem::path& path, const GgufMetadataList& metadata,
                const std::vector<GgufTensorData>& tensors) {
  size_t next = 0;
  write_file(
      path, metadata, specs_of(tensors),
      [&](const GgufTensorSpec&, std::vector<std::byte>& out) { out = tensors[next++].bytes; });
}

std::string gguf_bytes(const GgufMetadataList& metadata,
                       const std::vector<GgufTensorData>& tensors) {
  std::ostringstream out;
  size_t next = 0;
  write_all(
      out, "a GGUF image", metadata, specs_of(tensors),
      [&](const GgufTensorSpec&, std::vector<std::byte>& bytes) { bytes = tensors[next++].bytes; });
  return out.str();
}

void write_gguf_streamed(
    const std::filesystem::path& path, const GgufMetadataList& metadata,
    const std::vector<GgufTensorSpec>& specs,
    const std::function<void(const GgufTensorSpec& spec, std::vector<std::byte>& out)>& produce) {
  write_file(path, metadata, specs, produce);
}

}  // namespace dapx
