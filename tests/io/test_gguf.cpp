// GGUF reader, writer and block decoders. The corrupt-input tests build their bytes by hand
// (RawGguf), independent of the writer; the quantisation tests compare gguf_quant with naive
// decoders written here from the format description, one element at a time.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "error_message.h"
#include "io/gguf.h"
#include "io/gguf_quant.h"
#include "io/safetensors.h"  // float_to_f16, f16_to_float
#include "temp_dir.h"
#include "util/bf16.h"

namespace dapx {
namespace {

using test::expect_error;

// ---- byte helpers ----

GgufContents parse(const std::string& image) {
  return parse_gguf(reinterpret_cast<const std::byte*>(image.data()), image.size(), "test.gguf");
}

// A GGUF image written field by field.
struct RawGguf {
  std::string b;
  RawGguf& u8(uint8_t v) {
    b.push_back(static_cast<char>(v));
    return *this;
  }
  RawGguf& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  RawGguf& u32(uint32_t v) { return le(v, 4); }
  RawGguf& u64(uint64_t v) { return le(v, 8); }
  RawGguf& str(const std::string& s) {
    u64(s.size());
    b += s;
    return *this;
  }
  RawGguf& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b += "GGUF";
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  RawGguf& kv_u32(const std::string& key, uint32_t v) {
    str(key);
    u32(4);
    return u32(v);
  }
  RawGguf& kv_str(const std::string& key, const std::string& v) {
    str(key);
    u32(8);
    return str(v);
  }
  // Tensor info; dims innermost first, as in the file.
  RawGguf& tensor(const std::string& name, const std::vector<uint64_t>& dims, uint32_t type,
                  uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    u32(type);
    return u64(offset);
  }
  RawGguf& pad(size_t alignment = 32) {
    while (b.size() % alignment) b.push_back('\0');
    return *this;
  }
  RawGguf& zeros(size_t n) {
    b.append(n, '\0');
    return *this;
  }
};

// ---- metadata round trip ----

GgufMetadataList every_metadata_type() {
  return {
      {"general.architecture", GgufValue::string("llama")},
      {"t.u8", GgufValue::u8(255)},
      {"t.i8", GgufValue::i8(-128)},
      {"t.u16", GgufValue::u16(65535)},
      {"t.i16", GgufValue::i16(-32768)},
      {"t.u32", GgufValue::u32(4294967295u)},
      {"t.i32", GgufValue::i32(std::numeric_limits<int32_t>::min())},
      {"t.u64", GgufValue::u64(std::numeric_limits<uint64_t>::max())},
      {"t.i64", GgufValue::i64(std::numeric_limits<int64_t>::min())},
      {"t.f32", GgufValue::f32(1e-6f)},
      {"t.f64", GgufValue::f64(-3.141592653589793)},
      {"t.true", GgufValue::boolean(true)},
      {"t.false", GgufValue::boolean(false)},
      {"t.str", GgufValue::string(std::string("h\xc3\xa9llo\0world", 12))},
      {"t.empty_str", GgufValue::string("")},
      {"a.u8", GgufValue::uint_array(GgufValueType::U8, {0, 1, 255})},
      {"a.i8", GgufValue::int_array(GgufValueType::I8, {-128, 0, 127})},
      {"a.u16", GgufValue::uint_array(GgufValueType::U16, {65535})},
      {"a.i16", GgufValue::int_array(GgufValueType::I16, {-1, 2})},
      {"a.u32", GgufValue::uint_array(GgufValueType::U32, {7, 8, 9})},
      {"a.i32", GgufValue::int_array(GgufValueType::I32, {1, -2, 3})},
      {"a.u64", GgufValue::uint_array(GgufValueType::U64, {1ull << 40})},
      {"a.i64", GgufValue::int_array(GgufValueType::I64, {-(1ll << 40)})},
      {"a.f32", GgufValue::float_array(GgufValueType::F32, {0.5, -2.25, 1e30})},
      {"a.f64", GgufValue::float_array(GgufValueType::F64, {1e-300, 2.5})},
      {"a.bool", GgufValue::uint_array(GgufValueType::Bool, {1, 0, 1})},
      {"a.str", GgufValue::string_array({"a", "", "\xe4\xb8\xad", std::string(300, 'x')})},
      {"a.empty", GgufValue::string_array({})},
      {"a.empty_u32", GgufValue::uint_array(GgufValueType::U32, {})},
  };
}

TEST(Gguf, MetadataOfEveryTypeRoundTrips) {
  test::TempDir dir;
  const GgufMetadataList meta = every_metadata_type();
  write_gguf(dir / "m.gguf", meta, {});
  const auto f = GgufFile::open(dir / "m.gguf");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_TRUE(f->tensors().empty());
  ASSERT_EQ(f->metadata().entries().size(), meta.size());
  for (size_t i = 0; i < meta.size(); ++i) {
    EXPECT_EQ(f->metadata().entries()[i].first, meta[i].first);
    EXPECT_TRUE(f->metadata().entries()[i].second == meta[i].second) << meta[i].first;
  }
  // The in-memory writer makes the same bytes.
  EXPECT_EQ(test::read_file(dir / "m.gguf"), gguf_bytes(meta, {}));
}

TEST(Gguf, TypedGetters) {
  const GgufContents c = parse(gguf_bytes(every_metadata_type(), {}));
  const GgufMetadata& m = c.metadata();
  EXPECT_EQ(m.get_string("general.architecture"), "llama");
  EXPECT_EQ(m.get_string("t.str"), std::string("h\xc3\xa9llo\0world", 12));
  EXPECT_EQ(m.get_u32("t.u8"), 255u);
  EXPECT_EQ(m.get_u32("t.u16"), 65535u);
  EXPECT_EQ(m.get_u32("t.u32"), 4294967295u);
  EXPECT_EQ(m.get_int("t.i8"), -128);
  EXPECT_EQ(m.get_int("t.i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(m.get_int("t.u32"), 4294967295ll);
  EXPECT_FLOAT_EQ(static_cast<float>(m.get_float("t.f32")), 1e-6f);
  EXPECT_DOUBLE_EQ(m.get_float("t.f64"), -3.141592653589793);
  EXPECT_TRUE(m.get_bool("t.true"));
  EXPECT_FALSE(m.get_bool("t.false"));
  EXPECT_EQ(m.get_string_array("a.str"),
            (std::vector<std::string>{"a", "", "\xe4\xb8\xad", std::string(300, 'x')}));
  EXPECT_TRUE(m.get_string_array("a.empty").empty());
  EXPECT_EQ(m.get_int_array("a.u32"), (std::vector<int64_t>{7, 8, 9}));
  EXPECT_EQ(m.get_int_array("a.i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(m.get_int_array("a.i8"), (std::vector<int64_t>{-128, 0, 127}));
  EXPECT_EQ(m.get_float_array("a.f32"),
            (std::vector<double>{0.5, -2.25, static_cast<float>(1e30)}));
  EXPECT_EQ(m.get_float_array("a.f64"), (std::vector<double>{1e-300, 2.5}));
  EXPECT_TRUE(m.has("t.u8"));
  EXPECT_FALSE(m.has("nope"));
  EXPECT_EQ(m.find("nope"), nullptr);
}

TEST(Gguf, GetterErrorsNameKeyAndTypes) {
  const GgufContents c = parse(gguf_bytes(every_metadata_type(), {}));
  const GgufMetadata& m = c.metadata();
  expect_error([&] { m.get_string("llama.block_count"); },
               {"test.gguf", "missing key 'llama.block_count'"});
  expect_error([&] { m.get_u32("general.architecture"); },
               {"key 'general.architecture' has type string, expected uint32"});
  expect_error([&] { m.get_string("t.u32"); }, {"key 't.u32' has type uint32, expected string"});
  expect_error([&] { m.get_float("t.u32"); }, {"has type uint32, expected float32 or float64"});
  expect_error([&] { m.get_bool("t.u8"); }, {"has type uint8, expected bool"});
  expect_error([&] { m.get_u32("t.u64"); }, {"key 't.u64' has value", "out of range for uint32"});
  expect_error([&] { m.get_u32("t.i8"); }, {"has value -128, out of range for uint32"});
  expect_error([&] { m.get_int("t.u64"); }, {"out of range for int64"});
  expect_error([&] { m.get_int("t.true"); }, {"has type bool, expected an integer"});
  expect_error([&] { m.get_string_array("a.u32"); },
               {"key 'a.u32' has type array of uint32, expected array of string"});
  expect_error([&] { m.get_int_array("a.str"); }, {"has type array of string"});
  expect_error([&] { m.get_float_array("a.i32"); }, {"has type array of int32"});
  expect_error([&] { m.get_int_array("t.u32"); }, {"has type uint32, expected array of integers"});
}

TEST(Gguf, ValueFactoriesCheckRanges) {
  expect_error([] { GgufValue::uint_array(GgufValueType::U8, {256}); },
               {"256 does not fit a GGUF uint8"});
  expect_error([] { GgufValue::int_array(GgufValueType::I16, {40000}); },
               {"does not fit a GGUF int16"});
  expect_error([] { GgufValue::int_array(GgufValueType::U32, {1}); }, {"uint32"});
  expect_error([] { GgufValue::float_array(GgufValueType::String, {1}); }, {"string"});
}

// ---- tensors round trip ----

std::vector<std::byte> f32_bytes(const std::vector<float>& v) {
  std::vector<std::byte> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<std::byte> u16_bytes(const std::vector<uint16_t>& v) {
  std::vector<std::byte> b;
  for (uint16_t h : v) {
    b.push_back(static_cast<std::byte>(h & 0xff));
    b.push_back(static_cast<std::byte>(h >> 8));
  }
  return b;
}

TEST(Gguf, TensorsRoundTripWithAlignment) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> f32(6), f16v(4), bf16v(8), q8(128);
  for (auto* v : {&f32, &f16v, &bf16v, &q8})
    for (float& x : *v) x = dist(rng);
  std::vector<uint16_t> f16h, bf16h;
  for (float x : f16v) f16h.push_back(float_to_f16(x));
  for (float x : bf16v) bf16h.push_back(f32_to_bf16(x));
  std::vector<std::byte> q4k(144);
  for (auto& b : q4k) b = static_cast<std::byte>(rng());
  q4k[0] = std::byte{0x00};  // d = 1.0
  q4k[1] = std::byte{0x3c};
  q4k[2] = std::byte{0x00};  // dmin = 0.5
  q4k[3] = std::byte{0x38};

  for (uint32_t alignment : {32u, 64u, 1u}) {
    SCOPED_TRACE(alignment);
    GgufMetadataList meta = {{"general.architecture", GgufValue::string("llama")}};
    if (alignment != 32) meta.push_back({"general.alignment", GgufValue::u32(alignment)});
    const std::vector<GgufTensorData> tensors = {
        {"a.f32", GgmlType::F32, {2, 3}, f32_bytes(f32)},
        {"b.f16", GgmlType::F16, {4}, u16_bytes(f16h)},
        {"c.bf16", GgmlType::BF16, {2, 2, 2}, u16_bytes(bf16h)},
        {"d.q8_0", GgmlType::Q8_0, {2, 64}, quantize_q8_0(q8.data(), 128)},
        {"e.empty", GgmlType::F32, {0, 5}, {}},
        {"f.q4_k", GgmlType::Q4_K, {1, 1, 1, 256}, q4k},
    };
    test::TempDir dir;
    write_gguf(dir / "t.gguf", meta, tensors);
    const auto f = GgufFile::open(dir / "t.gguf");
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(f->data_offset() % alignment, 0u);
    ASSERT_EQ(f->tensors().size(), tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const GgufTensor& t = f->tensors()[i];
      EXPECT_EQ(t.name, tensors[i].name);
      EXPECT_EQ(t.type, tensors[i].type);
      EXPECT_EQ(t.shape, tensors[i].shape);
      EXPECT_EQ(t.offset % alignment, 0u);
      ASSERT_EQ(t.nbytes, tensors[i].bytes.size());
      if (t.nbytes) {
        EXPECT_EQ(std::memcmp(t.data, tensors[i].bytes.data(), t.nbytes), 0);
      }
      EXPECT_EQ(&f->get(t.name), &t);
    }
    EXPECT_EQ(gguf_tensor_to_float(f->get("a.f32")), f32);
    const std::vector<float> h = gguf_tensor_to_float(f->get("b.f16"));
    for (size_t i = 0; i < h.size(); ++i) EXPECT_EQ(h[i], f16_to_float(f16h[i]));
    const std::vector<float> bf = gguf_tensor_to_float(f->get("c.bf16"));
    for (size_t i = 0; i < bf.size(); ++i) EXPECT_EQ(bf[i], bf16_to_f32(bf16h[i]));
    EXPECT_TRUE(gguf_tensor_to_float(f->get("e.empty")).empty());
    EXPECT_EQ(f->get("e.empty").num_rows(), 0);
    EXPECT_EQ(f->find("nope"), nullptr);
    expect_error([&] { f->get("nope"); }, {"missing tensor 'nope'", "t.gguf"});

    // One row at a time equals the whole tensor.
    const GgufTensor& q = f->get("d.q8_0");
    EXPECT_EQ(q.row_length(), 64);
    EXPECT_EQ(q.num_rows(), 2);
    const std::vector<float> all = gguf_tensor_to_float(q);
    std::vector<float> row(64);
    dequantize_rows(q, 1, 1, row.data());
    EXPECT_EQ(row, std::vector<float>(all.begin() + 64, all.end()));
    expect_error([&] { dequantize_rows(q, 1, 2, row.data()); }, {"out of range"});
  }
}

TEST(Gguf, ReadsVersion2) {
  std::string image =
      gguf_bytes({{"k", GgufValue::u32(1)}}, {{"w", GgmlType::F32, {2}, f32_bytes({1.0f, 2.0f})}});
  image[4] = 2;
  const GgufContents c = parse(image);
  EXPECT_EQ(c.version(), 2u);
  EXPECT_EQ(gguf_tensor_to_float(c.get("w")), (std::vector<float>{1.0f, 2.0f}));
}

TEST(Gguf, HandBuiltFileMatchesTheSpecLayout) {
  // Header, one key, two tensors (dims innermost first), padding to 32, data at offsets 0 and 32.
  RawGguf r;
  r.header(2, 1).kv_str("general.architecture", "qwen2");
  r.tensor("x", {3, 2}, 0, 0).tensor("y", {2}, 1, 32).pad();
  const size_t data_start = r.b.size();
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  r.b.append(reinterpret_cast<const char*>(x.data()), 24);
  r.zeros(8);
  r.u8(0x00).u8(0x3c).u8(0x00).u8(0xc0);  // f16 1.0, -2.0
  const GgufContents c = parse(r.b);
  EXPECT_EQ(c.data_offset(), data_start);
  EXPECT_EQ(c.get("x").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(gguf_tensor_to_float(c.get("x")), x);
  EXPECT_EQ(gguf_tensor_to_float(c.get("y")), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(c.metadata().get_string("general.architecture"), "qwen2");
}

// ---- corrupt inputs ----

// A valid one-tensor image: key "k" = uint32 7, tensor "w" F32 [4] at offset 0.
RawGguf valid_raw() {
  RawGguf r;
  r.header(1, 1).kv_u32("k", 7).tensor("w", {4}, 0, 0).pad().zeros(16);
  return r;
}

void expect_parse_error(const std::string& image, const std::vector<std::string>& parts) {
  std::vector<std::string> all = parts;
  all.push_back("test.gguf");
  expect_error([&] { parse(image); }, all);
}

TEST(GgufCorrupt, ValidBaseParses) { EXPECT_NO_THROW(parse(valid_raw().b)); }

TEST(GgufCorrupt, BadMagicAndVersion) {
  expect_parse_error("", {"bad magic"});
  expect_parse_error("GGU", {"bad magic 'GGU'"});
  std::string s = valid_raw().b;
  s[0] = 'X';
  expect_parse_error(s, {"bad magic 'XGUF'"});
  expect_parse_error(RawGguf().header(0, 0, 1).b, {"unsupported version 1", "supported: 2, 3"});
  expect_parse_error(RawGguf().header(0, 0, 4).b, {"unsupported version 4"});
  expect_parse_error(RawGguf().header(0, 0, 3u << 24).b, {"big-endian"});
}

TEST(GgufCorrupt, Truncated) {
  const std::string s = valid_raw().b;
  expect_parse_error(s.substr(0, 6), {"truncated while reading the version"});
  expect_parse_error(s.substr(0, 20), {"truncated while reading the metadata count"});
  RawGguf value;
  value.header(0, 1).str("k").u32(4).u8(1);
  expect_parse_error(value.b, {"truncated while reading the value of key 'k'"});
  // Cut inside a tensor info: the name is read, the dims are not.
  const std::string name(30, 'w');
  RawGguf info;
  info.header(1, 0).str(name).u32(1).u32(0);
  expect_parse_error(info.b, {"truncated while reading the dimensions of tensor '" + name + "'"});
  // Cut inside the data.
  expect_parse_error(s.substr(0, s.size() - 1), {"tensor 'w'", "needs 16 bytes at offset 0",
                                                 "past the end of the data section"});
  // Cut before the data section.
  RawGguf h;
  h.header(1, 0).tensor("w", {4}, 0, 0);
  expect_parse_error(h.b, {"ends before its data section"});
}

TEST(GgufCorrupt, TruncatedFileOnDisk) {
  test::TempDir dir;
  const std::string s = valid_raw().b;
  test::write_file(dir / "cut.gguf", s.substr(0, s.size() - 4));
  expect_error([&] { GgufFile::open(dir / "cut.gguf"); }, {"cut.gguf", "past the end"});
  test::write_file(dir / "empty.gguf", "");
  expect_error([&] { GgufFile::open(dir / "empty.gguf"); }, {"empty.gguf", "bad magic"});
  expect_error([&] { GgufFile::open(dir / "missing.gguf"); },
               {"cannot open GGUF file", "missing.gguf"});
}

TEST(GgufCorrupt, OffsetsAndSizes) {
  RawGguf past;
  past.header(1, 0).tensor("w", {4}, 0, 64).pad().zeros(16);
  expect_parse_error(past.b,
                     {"tensor 'w' has offset 64 past the end of the data section (16 bytes"});
  RawGguf misaligned;
  misaligned.header(1, 0).tensor("w", {4}, 0, 4).pad().zeros(32);
  expect_parse_error(misaligned.b, {"tensor 'w' has offset 4, not a multiple of the alignment 32"});
  RawGguf big;
  big.header(1, 0).tensor("w", {1u << 20, 1u << 20}, 0, 0).pad().zeros(16);
  expect_parse_error(big.b,
                     {"tensor 'w' of shape [1048576, 1048576] F32 needs 4398046511104 bytes"});
  RawGguf overflow;
  overflow.header(1, 0).tensor("w", {1ull << 62, 4}, 0, 0).pad().zeros(16);
  expect_parse_error(overflow.b, {"tensor 'w' has shape [4, 4611686018427387904]", "overflows"});
  // No elements, but a row whose byte size does not fit: rejected, not left to overflow later.
  RawGguf huge_row;
  huge_row.header(1, 0).tensor("w", {1ull << 62, 0}, 0, 0).pad();
  expect_parse_error(huge_row.b, {"tensor 'w' has row length 4611686018427387904, too large"});
  RawGguf huge_dim;
  huge_dim.header(1, 0).tensor("w", {~0ull}, 0, 0).pad();
  expect_parse_error(huge_dim.b, {"has dimension 18446744073709551615, too large"});
  RawGguf overlap;
  overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {4}, 0, 32).pad().zeros(64);
  expect_parse_error(overlap.b, {"tensors 'a' and 'b' overlap"});
}

TEST(GgufCorrupt, TensorInfos) {
  RawGguf unknown;
  unknown.header(1, 0).tensor("w", {4}, 31, 0).pad().zeros(16);
  expect_parse_error(unknown.b, {"tensor 'w' has unknown tensor type 31"});
  RawGguf unknown2;
  unknown2.header(1, 0).tensor("w", {4}, 1000, 0).pad().zeros(16);
  expect_parse_error(unknown2.b, {"unknown tensor type 1000"});
  RawGguf dup;
  dup.header(2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad().zeros(64);
  expect_parse_error(dup.b, {"tensor name 'w' appears more than once"});
  RawGguf dims5;
  dims5.header(1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0).pad().zeros(16);
  expect_parse_error(dims5.b, {"tensor 'w' has 5 dimensions (supported: 1 to 4)"});
  RawGguf dims0;
  dims0.header(1, 0).tensor("w", {}, 0, 0).u64(0).u64(0).pad().zeros(16);
  expect_parse_error(dims0.b, {"tensor 'w' has 0 dimensions"});
  RawGguf block;
  block.header(1, 0).tensor("w", {33, 2}, 8, 0).pad().zeros(256);
  expect_parse_error(
      block.b, {"tensor 'w' has row length 33, not a multiple of 32, the block size of Q8_0"});
  RawGguf empty_name;
  empty_name.header(1, 0).tensor("", {4}, 0, 0).pad().zeros(16);
  expect_parse_error(empty_name.b, {"tensor 0 has an empty name"});
}

TEST(GgufCorrupt, Metadata) {
  RawGguf dup;
  dup.header(0, 2).kv_u32("k", 1).kv_u32("k", 2);
  expect_parse_error(dup.b, {"metadata key 'k' appears more than once"});
  RawGguf bad_type;
  bad_type.header(0, 1).str("k").u32(13).u32(0);
  expect_parse_error(bad_type.b, {"key 'k' has unknown value type 13"});
  RawGguf bad_elem;
  bad_elem.header(0, 1).str("k").u32(9).u32(99).u64(0);
  expect_parse_error(bad_elem.b, {"array key 'k' has unknown element type 99"});
  RawGguf nested;
  nested.header(0, 1).str("k").u32(9).u32(9).u64(1).u32(4).u64(1).u32(5);
  expect_parse_error(nested.b, {"key 'k' is an array of arrays", "not supported"});
  RawGguf bad_bool;
  bad_bool.header(0, 1).str("k").u32(7).u8(2);
  expect_parse_error(bad_bool.b, {"the value of key 'k' is a bool of value 2 (must be 0 or 1)"});
  RawGguf bad_bool_elem;
  bad_bool_elem.header(0, 1).str("k").u32(9).u32(7).u64(2).u8(1).u8(3);
  expect_parse_error(bad_bool_elem.b, {"element 1 of the value of key 'k' is a bool of value 3"});
  RawGguf empty_key;
  empty_key.header(0, 1).str("").u32(4).u32(1);
  expect_parse_error(empty_key.b, {"metadata entry 0 has an empty key"});
  RawGguf align_type;
  align_type.header(0, 1).str("general.alignment").u32(10).u64(64);
  expect_parse_error(align_type.b, {"key 'general.alignment' has type uint64, expected uint32"});
  RawGguf align_pow;
  align_pow.header(0, 1).kv_u32("general.alignment", 24);
  expect_parse_error(align_pow.b, {"key 'general.alignment' is 24, not a power of two"});
  RawGguf align_zero;
  align_zero.header(0, 1).kv_u32("general.alignment", 0);
  expect_parse_error(align_zero.b, {"is 0, not a power of two"});
}

TEST(GgufCorrupt, StringLengthsPastTheEnd) {
  RawGguf key;
  key.header(0, 1).u64(1000).b += std::string(20, 'a');
  expect_parse_error(key.b, {"string length 1000 of the key of metadata entry 0",
                             "runs past the end of the file (20 bytes left)"});
  RawGguf value;
  value.header(0, 1).str("k").u32(8).u64(1ull << 63);
  expect_parse_error(
      value.b, {"string length 9223372036854775808 of the value of key 'k'", "runs past the end"});
  RawGguf elem;
  elem.header(0, 1).str("k").u32(9).u32(8).u64(2).str("ok").u64(50).b += "short";
  expect_parse_error(elem.b, {"string length 50 of element 1 of the value of key 'k'"});
  RawGguf name;
  name.header(1, 0).u64(~0ull).zeros(40);
  expect_parse_error(name.b, {"string length 18446744073709551615 of the name of tensor 0"});
}

TEST(GgufCorrupt, AbsurdCounts) {
  RawGguf tensors;
  tensors.header(1ull << 60, 0).zeros(64);
  expect_parse_error(tensors.b, {"tensor count 1152921504606846976 is impossible"});
  RawGguf kvs;
  kvs.header(0, ~0ull).zeros(64);
  expect_parse_error(kvs.b, {"metadata count 18446744073709551615 is impossible"});
  RawGguf array;
  array.header(0, 1).str("k").u32(9).u32(4).u64(1ull << 40).zeros(64);
  expect_parse_error(array.b, {"the length of array key 'k' 1099511627776 is impossible"});
  RawGguf strings;  // 100 strings need at least 800 bytes
  strings.header(0, 1).str("k").u32(9).u32(8).u64(100).zeros(500);
  expect_parse_error(strings.b, {"the length of array key 'k' 100 is impossible"});
}

TEST(GgufWriter, Errors) {
  test::TempDir dir;
  const auto p = dir / "w.gguf";
  const GgufTensorData w{"w", GgmlType::F32, {2}, f32_bytes({1, 2})};
  expect_error(
      [&] {
        write_gguf(p, {{"k", GgufValue::u8(1)}, {"k", GgufValue::u8(2)}}, {});
      },
      {"w.gguf", "metadata key 'k' appears twice"});
  expect_error([&] { write_gguf(p, {}, {w, w}); }, {"tensor 'w' appears twice"});
  expect_error(
      [&] {
        write_gguf(p, {}, {{"w", GgmlType::F32, {3}, f32_bytes({1, 2})}});
      },
      {"tensor 'w' has 8 bytes, its shape [3] x F32 needs 12"});
  expect_error(
      [&] {
        write_gguf(p, {}, {{"w", GgmlType::Q8_0, {40}, {}}});
      },
      {"row length 40, not a multiple of 32"});
  expect_error(
      [&] {
        write_gguf(p, {}, {{"w", GgmlType::F32, {1, 1, 1, 1, 1}, {}}});
      },
      {"5 dimensions"});
  expect_error([&] { write_gguf(p, {}, {{"", GgmlType::F32, {1}, {}}}); }, {"empty name"});
  expect_error(
      [&] {
        write_gguf(p, {{"general.alignment", GgufValue::u32(48)}}, {});
      },
      {"not a power of two"});
  expect_error(
      [&] {
        write_gguf(p, {{"general.alignment", GgufValue::i32(32)}}, {});
      },
      {"has type int32, expected uint32"});
  GgufValue broken = GgufValue::u32(1);
  broken.uints.push_back(2);
  expect_error([&] { write_gguf(p, {{"k", broken}}, {}); }, {"scalar with 2 values"});
}

TEST(GgufWriter, Streamed) {
  test::TempDir dir;
  std::vector<GgufTensorSpec> specs = {{"a", GgmlType::F32, {2}}, {"b", GgmlType::F16, {3}}};
  int calls = 0;
  write_gguf_streamed(dir / "s.gguf", {}, specs,
                      [&](const GgufTensorSpec& s, std::vector<std::byte>& out) {
                        ++calls;
                        out = s.name == "a" ? f32_bytes({1, 2}) : u16_bytes({0x3c00, 0, 0xbc00});
                      });
  EXPECT_EQ(calls, 2);
  const auto f = GgufFile::open(dir / "s.gguf");
  EXPECT_EQ(gguf_tensor_to_float(f->get("b")), (std::vector<float>{1, 0, -1}));
  // ggml reads the data section as padded tensors: the file ends on the alignment.
  EXPECT_EQ(f->file_size() % 32, 0u);
}

// ---- block decoders against naive ones ----

float h2f(uint16_t h) { return f16_to_float(h); }
uint16_t rd16(const std::vector<uint8_t>& b, size_t at) {
  return static_cast<uint16_t>(b[at] | (b[at + 1] << 8));
}
void wr16(std::vector<uint8_t>& b, size_t at, float v) {
  const uint16_t h = float_to_f16(v);
  b[at] = static_cast<uint8_t>(h & 0xff);
  b[at + 1] = static_cast<uint8_t>(h >> 8);
}

std::vector<float> decode(GgmlType type, const std::vector<uint8_t>& blocks, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(type, reinterpret_cast<const std::byte*>(blocks.data()), out.data(), n);
  return out;
}

// Naive decoders, one element at a time, from the format description.
float naive_q8_0(const std::vector<uint8_t>& b, int e) {
  const size_t blk = static_cast<size_t>(e / 32) * 34;
  return static_cast<float>(static_cast<int8_t>(b[blk + 2 + e % 32])) * h2f(rd16(b, blk));
}
int nibble_32(const std::vector<uint8_t>& b, size_t qs, int i) {  // element i of 32 in 16 bytes
  return i < 16 ? (b[qs + i] & 15) : (b[qs + i - 16] >> 4);
}
float naive_q4_0(const std::vector<uint8_t>& b, int e) {
  const size_t blk = static_cast<size_t>(e / 32) * 18;
  return static_cast<float>(nibble_32(b, blk + 2, e % 32) - 8) * h2f(rd16(b, blk));
}
float naive_q4_1(const std::vector<uint8_t>& b, int e) {
  const size_t blk = static_cast<size_t>(e / 32) * 20;
  return static_cast<float>(nibble_32(b, blk + 4, e % 32)) * h2f(rd16(b, blk)) +
         h2f(rd16(b, blk + 2));
}
int fifth_bit(const std::vector<uint8_t>& b, size_t qh, int i) {
  const uint32_t bits = b[qh] | (b[qh + 1] << 8) | (b[qh + 2] << 16) | (uint32_t(b[qh + 3]) << 24);
  return (bits >> i) & 1;
}
float naive_q5_0(const std::vector<uint8_t>& b, int e) {
  const size_t blk = static_cast<size_t>(e / 32) * 22;
  const int i = e % 32;
  const int q = nibble_32(b, blk + 6, i) + 16 * fifth_bit(b, blk + 2, i);
  return static_cast<float>(q - 16) * h2f(rd16(b, blk));
}
float naive_q5_1(const std::vector<uint8_t>& b, int e) {
  const size_t blk = static_cast<size_t>(e / 32) * 24;
  const int i = e % 32;
  const int q = nibble_32(b, blk + 8, i) + 16 * fifth_bit(b, blk + 4, i);
  return static_cast<float>(q) * h2f(rd16(b, blk)) + h2f(rd16(b, blk + 2));
}

// The 6-bit scale and min of sub-block k from the 12 packed bytes at `s`.
void naive_scale_min(const std::vector<uint8_t>& b, size_t s, int k, int* sc, int* m) {
  if (k < 4) {
    *sc = b[s + k] % 64;
    *m = b[s + 4 + k] % 64;
  } else {
    *sc = (b[s + 4 + k] % 16) + 16 * (b[s + k - 4] / 64);
    *m = (b[s + 4 + k] / 16) + 16 * (b[s + k] / 64);
  }
}
// Packs 8 scales and 8 mins (each < 64) the way the description says they are read.
void pack_scales(std::vector<uint8_t>& b, size_t s, const int sc[8], const int m[8]) {
  for (int k = 0; k < 4; ++k) {
    b[s + k] = static_cast<uint8_t>((sc[k] & 63) | ((sc[k + 4] >> 4) << 6));
    b[s + 4 + k] = static_cast<uint8_t>((m[k] & 63) | ((m[k + 4] >> 4) << 6));
    b[s + 8 + k] = static_cast<uint8_t>((sc[k + 4] & 15) | ((m[k + 4] & 15) << 4));
  }
}
// Q4_K / Q5_K element e of a 256 super-block; `qh` = 0 for Q4_K.
float naive_k45(const std::vector<uint8_t>& b, size_t blk, size_t qh, size_t qs, int e) {
  const int k = e / 32, l = e % 32;
  int sc, m;
  naive_scale_min(b, blk + 4, k, &sc, &m);
  const uint8_t byte = b[qs + 32 * (k / 2) + l];
  int q = (k % 2 == 0) ? (byte & 15) : (byte >> 4);
  if (qh) q += 16 * ((b[qh + l] >> k) & 1);
  return h2f(rd16(b, blk)) * static_cast<float>(sc) * static_cast<float>(q) -
         h2f(rd16(b, blk + 2)) * static_cast<float>(m);
}
float naive_q4_k(const std::vector<uint8_t>& b, int e) {
  const size_t blk = static_cast<size_t>(e / 256) * 144;
  return naive_k45(b, blk, 0, blk + 16, e % 256);
}
float naive_q5_k(const std::vector<uint8_t>& b, int e) {
  const size_t blk = static_cast<size_t>(e / 256) * 176;
  return naive_k45(b, blk, blk + 16, blk + 48, e % 256);
}
float naive_q6_k(const std::vector<uint8_t>& b, int e) {
  const size_t blk = static_cast<size_t>(e / 256) * 210;
  const int i = e % 256, h = i / 128, r = i % 128, g = r / 32, l = r % 32;
  const uint8_t lowbyte = b[blk + 64 * h + l + (g % 2 == 1 ? 32 : 0)];
  const int low = g < 2 ? (lowbyte & 15) : (lowbyte >> 4);
  const int high = (b[blk + 128 + 32 * h + l] >> (2 * g)) & 3;
  const int scale = static_cast<int8_t>(b[blk + 192 + 8 * h + r / 16]);
  return h2f(rd16(b, blk + 208)) * static_cast<float>(scale) *
         static_cast<float>(low + 16 * high - 32);
}

using Naive = float (*)(const std::vector<uint8_t>&, int);

void expect_matches_naive(GgmlType type, Naive naive, const std::vector<uint8_t>& blocks) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  ASSERT_EQ(blocks.size() % info.block_bytes, 0u);
  const int64_t n = static_cast<int64_t>(blocks.size() / info.block_bytes) * info.block_size;
  const std::vector<float> got = decode(type, blocks, n);
  for (int e = 0; e < n; ++e) {
    ASSERT_FLOAT_EQ(got[static_cast<size_t>(e)], naive(blocks, e)) << info.name << " element " << e;
  }
}

// Random blocks whose f16 fields (at `half_at` within each block) are finite.
std::vector<uint8_t> random_blocks(GgmlType type, int n_blocks, const std::vector<size_t>& half_at,
                                   uint32_t seed) {
  const size_t bytes = ggml_type_info(type).block_bytes;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scale(-0.1f, 0.1f);
  std::vector<uint8_t> b(bytes * static_cast<size_t>(n_blocks));
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  for (int i = 0; i < n_blocks; ++i)
    for (size_t at : half_at) wr16(b, bytes * static_cast<size_t>(i) + at, scale(rng));
  return b;
}

TEST(GgufQuant, RandomBlocksMatchNaiveDecoders) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(seed);
    expect_matches_naive(GgmlType::Q8_0, naive_q8_0, random_blocks(GgmlType::Q8_0, 3, {0}, seed));
    expect_matches_naive(GgmlType::Q4_0, naive_q4_0, random_blocks(GgmlType::Q4_0, 3, {0}, seed));
    expect_matches_naive(GgmlType::Q4_1, naive_q4_1,
                         random_blocks(GgmlType::Q4_1, 3, {0, 2}, seed));
    expect_matches_naive(GgmlType::Q5_0, naive_q5_0, random_blocks(GgmlType::Q5_0, 3, {0}, seed));
    expect_matches_naive(GgmlType::Q5_1, naive_q5_1,
                         random_blocks(GgmlType::Q5_1, 3, {0, 2}, seed));
    expect_matches_naive(GgmlType::Q4_K, naive_q4_k,
                         random_blocks(GgmlType::Q4_K, 2, {0, 2}, seed));
    expect_matches_naive(GgmlType::Q5_K, naive_q5_k,
                         random_blocks(GgmlType::Q5_K, 2, {0, 2}, seed));
    expect_matches_naive(GgmlType::Q6_K, naive_q6_k, random_blocks(GgmlType::Q6_K, 2, {208}, seed));
  }
}

TEST(GgufQuant, Q8_0HandBuilt) {
  std::vector<uint8_t> b(34);
  wr16(b, 0, -0.5f);  // negative d
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j * 8 - 128));
  const std::vector<float> y = decode(GgmlType::Q8_0, b, 32);
  EXPECT_EQ(y[0], 64.0f);    // -128 * -0.5
  EXPECT_EQ(y[16], -0.0f);   // 0
  EXPECT_EQ(y[31], -60.0f);  // 120 * -0.5
}

TEST(GgufQuant, Q4_0HandBuilt) {
  std::vector<uint8_t> b(18);
  wr16(b, 0, 0.25f);
  b[2] = 0xf0;   // element 0 = 0 - 8, element 16 = 15 - 8
  b[17] = 0x39;  // element 15 = 9 - 8, element 31 = 3 - 8
  const std::vector<float> y = decode(GgmlType::Q4_0, b, 32);
  EXPECT_EQ(y[0], -2.0f);
  EXPECT_EQ(y[16], 1.75f);
  EXPECT_EQ(y[15], 0.25f);
  EXPECT_EQ(y[31], -1.25f);
  EXPECT_EQ(y[1], -2.0f);  // zero nibbles
  expect_matches_naive(GgmlType::Q4_0, naive_q4_0, b);
}

// Q4_K / Q5_K with scales and mins near 63 in every sub-block, and distinct per sub-block.
std::vector<uint8_t> k_block(GgmlType type, float d, float dmin, uint32_t seed) {
  const size_t bytes = ggml_type_info(type).block_bytes;
  std::vector<uint8_t> b(bytes, 0);
  wr16(b, 0, d);
  wr16(b, 2, dmin);
  const int sc[8] = {63, 62, 61, 60, 59, 58, 57, 63};
  const int m[8] = {60, 63, 1, 62, 48, 33, 63, 17};
  pack_scales(b, 4, sc, m);
  std::mt19937 rng(seed);
  for (size_t i = 16; i < bytes; ++i) b[i] = static_cast<uint8_t>(rng());
  return b;
}

TEST(GgufQuant, Q4_KScalesMinsAndHandCase) {
  // The packing round trip, through the naive reader.
  std::vector<uint8_t> b = k_block(GgmlType::Q4_K, 1.0f, 0.5f, 3);
  const int want_sc[8] = {63, 62, 61, 60, 59, 58, 57, 63};
  const int want_m[8] = {60, 63, 1, 62, 48, 33, 63, 17};
  for (int k = 0; k < 8; ++k) {
    int sc, m;
    naive_scale_min(b, 4, k, &sc, &m);
    EXPECT_EQ(sc, want_sc[k]) << k;
    EXPECT_EQ(m, want_m[k]) << k;
  }
  // Hand case: qs[32*2 + 5] = 0xa3: element 2*64 + 5 (sub-block 4) = 3, element 2*64+32+5
  // (sub-block 5) = 10.
  b[16 + 64 + 5] = 0xa3;
  const std::vector<float> y = decode(GgmlType::Q4_K, b, 256);
  EXPECT_EQ(y[128 + 5], 1.0f * 59 * 3 - 0.5f * 48);
  EXPECT_EQ(y[160 + 5], 1.0f * 58 * 10 - 0.5f * 33);
  expect_matches_naive(GgmlType::Q4_K, naive_q4_k, b);
  // Negative d and dmin.
  expect_matches_naive(GgmlType::Q4_K, naive_q4_k, k_block(GgmlType::Q4_K, -0.03f, -0.7f, 4));
}

TEST(GgufQuant, Q5_KHighBits) {
  std::vector<uint8_t> b = k_block(GgmlType::Q5_K, 0.5f, 0.25f, 5);
  // Element l of sub-block k: bit k of qh[l]. qh at 16, qs at 48.
  for (int i = 16; i < 48; ++i) b[i] = 0;
  for (int i = 48; i < 176; ++i) b[i] = 0;
  b[16 + 7] = 0x80;       // sub-block 7, element 7: fifth bit set
  b[16 + 9] = 0x01;       // sub-block 0, element 9
  b[48 + 96 + 7] = 0x50;  // chunk 3: element 192+7 (sub-block 6) = 0, 224+7 (sub-block 7) = 5
  const std::vector<float> y = decode(GgmlType::Q5_K, b, 256);
  EXPECT_EQ(y[224 + 7], 0.5f * 63 * (5 + 16) - 0.25f * 17);
  EXPECT_EQ(y[192 + 7], 0.5f * 57 * 0 - 0.25f * 63);
  EXPECT_EQ(y[9], 0.5f * 63 * 16 - 0.25f * 60);
  EXPECT_EQ(y[32 + 9], 0.5f * 62 * 0 - 0.25f * 63);  // bit 1 of qh[9] is clear
  expect_matches_naive(GgmlType::Q5_K, naive_q5_k, b);
  expect_matches_naive(GgmlType::Q5_K, naive_q5_k, k_block(GgmlType::Q5_K, -1.5f, 0.125f, 6));
}

TEST(GgufQuant, Q6_KLayout) {
  std::vector<uint8_t> b(210, 0);
  for (int i = 0; i < 16; ++i)
    b[192 + i] = static_cast<uint8_t>(static_cast<int8_t>(i % 2 ? -(i + 1) : i + 1));
  wr16(b, 208, -0.25f);  // negative d
  // Second half (h = 1), l = 20: ql[64 + 20] = 0x9c, ql[64 + 52] = 0x3e, qh[32 + 20] = 0b11100100.
  b[64 + 20] = 0x9c;
  b[64 + 52] = 0x3e;
  b[128 + 32 + 20] = 0xe4;
  const std::vector<float> y = decode(GgmlType::Q6_K, b, 256);
  auto scale = [](int s) { return static_cast<float>(s % 2 ? -(s + 1) : s + 1); };
  // element 128 + 20: low nibble 0xc | (bits 0-1 = 0) << 4 = 12; scale index 8 + 20/16 = 9
  EXPECT_EQ(y[128 + 20], -0.25f * scale(9) * (12 - 32));
  // element 128 + 52: low nibble of ql[64 + 52] = 0xe | (bits 2-3 = 1) << 4 = 30; scale 8 + 3
  EXPECT_EQ(y[128 + 52], -0.25f * scale(11) * (30 - 32));
  // element 128 + 84: high nibble of ql[64 + 20] = 9 | (bits 4-5 = 2) << 4 = 41; scale 8 + 5
  EXPECT_EQ(y[128 + 84], -0.25f * scale(13) * (41 - 32));
  // element 128 + 116: high nibble of ql[64 + 52] = 3 | (bits 6-7 = 3) << 4 = 51; scale 8 + 7
  EXPECT_EQ(y[128 + 116], -0.25f * scale(15) * (51 - 32));
  expect_matches_naive(GgmlType::Q6_K, naive_q6_k, b);
  // Every 6-bit value at its extremes.
  for (int i = 0; i < 192; ++i) b[i] = 0xff;
  expect_matches_naive(GgmlType::Q6_K, naive_q6_k, b);
  EXPECT_EQ(decode(GgmlType::Q6_K, b, 256)[0], -0.25f * 1 * 31);
}

TEST(GgufQuant, PlainTypes) {
  const std::vector<float> f = {1.5f, -2.0f, 1e-8f, 65504.0f};
  EXPECT_EQ(decode(
                GgmlType::F32,
                [&] {
                  std::vector<uint8_t> b(16);
                  std::memcpy(b.data(), f.data(), 16);
                  return b;
                }(),
                4),
            f);
  std::vector<uint8_t> h;
  for (float x : f) {
    const uint16_t v = float_to_f16(x);
    h.push_back(static_cast<uint8_t>(v & 0xff));
    h.push_back(static_cast<uint8_t>(v >> 8));
  }
  const std::vector<float> hf = decode(GgmlType::F16, h, 4);
  EXPECT_EQ(hf[0], 1.5f);
  EXPECT_EQ(hf[3], 65504.0f);
  std::vector<uint8_t> bf = {0xc0, 0x3f, 0x00, 0xc0};  // bf16 1.5, -2.0
  EXPECT_EQ(decode(GgmlType::BF16, bf, 2), (std::vector<float>{1.5f, -2.0f}));
}

TEST(GgufQuant, Q8_0QuantiseErrorBound) {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(32 * 64);
  for (float& v : x) v = dist(rng) * (rng() % 4 == 0 ? 100.0f : 0.01f);
  for (int j = 0; j < 32; ++j) x[32 * 5 + j] = 0.0f;  // an all-zero block
  const std::vector<std::byte> q = quantize_q8_0(x.data(), static_cast<int64_t>(x.size()));
  ASSERT_EQ(q.size(), 64u * 34u);
  std::vector<float> y(x.size());
  dequantize_row(GgmlType::Q8_0, q.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t b = 0; b < 64; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    const float d = amax / 127.0f;
    const float d16 = h2f(static_cast<uint16_t>(static_cast<uint8_t>(q[34 * b]) |
                                                (static_cast<uint8_t>(q[34 * b + 1]) << 8)));
    // Rounding to the nearest step (d / 2), plus the f16 rounding of d on up to 127 steps.
    const float bound = 0.5f * d + 127.0f * std::fabs(d16 - d) + 1e-6f * amax;
    for (int j = 0; j < 32; ++j)
      EXPECT_LE(std::fabs(x[32 * b + j] - y[32 * b + j]), bound) << b << " " << j;
  }
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[32 * 5 + j], 0.0f);
  // ggml's rule on a hand case: amax 127 -> d 1, q = round half away from zero.
  std::vector<float> h(32, 0.0f);
  h[0] = 127.0f;
  h[1] = 2.5f;
  h[2] = -2.5f;
  h[3] = -127.0f;
  const std::vector<std::byte> hq = quantize_q8_0(h.data(), 32);
  EXPECT_EQ(static_cast<uint8_t>(hq[0]), 0x00);  // f16 1.0
  EXPECT_EQ(static_cast<uint8_t>(hq[1]), 0x3c);
  EXPECT_EQ(static_cast<int8_t>(hq[2]), 127);
  EXPECT_EQ(static_cast<int8_t>(hq[3]), 3);
  EXPECT_EQ(static_cast<int8_t>(hq[4]), -3);
  EXPECT_EQ(static_cast<int8_t>(hq[5]), -127);
  h[7] = std::nanf("");
  expect_error([&] { quantize_q8_0(h.data(), 32); }, {"element 7 is not finite"});
}

TEST(GgufQuant, RowLengthsAndTypes) {
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q8_0, 64), 68u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_K, 512), 288u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q6_K, 256), 210u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::BF16, 3), 6u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::F32, 0), 0u);
  expect_error([] { ggml_row_bytes(GgmlType::Q8_0, 33); },
               {"row length 33 is not a multiple of 32, the block size of Q8_0"});
  expect_error([] { ggml_row_bytes(GgmlType::Q4_K, 896); },
               {"row length 896 is not a multiple of 256, the block size of Q4_K"});
  std::vector<float> out(256);
  std::vector<std::byte> in(1024);
  expect_error([&] { dequantize_row(GgmlType::Q5_K, in.data(), out.data(), 100); },
               {"not a multiple of 256"});
  expect_error([&] { dequantize_row(GgmlType::Q2_K, in.data(), out.data(), 256); },
               {"tensor type Q2_K cannot be dequantised", "Q4_K, Q5_K, Q6_K"});
  expect_error([&] { quantize_q8_0(out.data(), 31); }, {"not a multiple of 32"});
  EXPECT_EQ(ggml_type_from_name("q8_0"), GgmlType::Q8_0);
  EXPECT_EQ(ggml_type_from_name("BF16"), GgmlType::BF16);
  expect_error([] { ggml_type_from_name("q9"); }, {"unknown ggml tensor type 'q9'"});
  EXPECT_EQ(find_ggml_type(4), nullptr);
  EXPECT_EQ(find_ggml_type(40), nullptr);
  EXPECT_STREQ(find_ggml_type(14)->name, "Q6_K");
}

}  // namespace
}  // namespace dapx
