// safetensors reader/writer: round trips, dtype conversions, and rejection of bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "error_message.h"
#include "io/safetensors.h"
#include "temp_dir.h"
#include "util/error.h"
#include "util/path_exists.h"

namespace dapx {
namespace {

using test::read_file;
using test::TempDir;
using test::write_file;

using test::expect_error;

template <typename T>
std::vector<std::byte> to_bytes(const std::vector<T>& v) {
  std::vector<std::byte> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A raw file: 8-byte little-endian header length, header text, `data_bytes` zero bytes.
std::string raw_file(const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s + header + std::string(data_bytes, '\0');
}

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<TensorData> sample_tensors() {
  std::vector<float> f32 = {1.0f, -2.5f, 3.14159f, 0.0f, -0.0f, 1e-30f, 65504.0f, -1e30f};
  std::vector<uint16_t> f16, bf16;
  for (float x : {0.5f, -1.0f, 2.0f, 1024.0f, -0.125f, 3.0f}) f16.push_back(float_to_f16(x));
  for (float x : {1.0f, -2.5f, 100.0f, 1e-3f}) bf16.push_back(float_to_bf16(x));
  return {
      {"w.f32", DType::F32, {2, 4}, to_bytes(f32)},
      {"w.f16", DType::F16, {3, 2}, to_bytes(f16)},
      {"a.bf16", DType::BF16, {4}, to_bytes(bf16)},
      {"scalar", DType::F32, {}, to_bytes(std::vector<float>{7.0f})},
      {"empty", DType::BF16, {0, 3}, {}},
  };
}

TEST(Safetensors, RoundTripAllDtypesExact) {
  TempDir dir;
  const auto path = dir / "t.safetensors";
  const auto tensors = sample_tensors();
  write_safetensors(path, tensors, {{"format", "pt"}});
  auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f->tensors().size(), tensors.size());
  for (const auto& t : tensors) {
    const TensorView* v = f->find(t.name);
    ASSERT_NE(v, nullptr) << t.name;
    EXPECT_EQ(v->dtype, t.dtype);
    EXPECT_EQ(v->shape, t.shape);
    ASSERT_EQ(v->nbytes, t.bytes.size());
    EXPECT_EQ(0, t.bytes.empty() ? 0 : std::memcmp(v->data, t.bytes.data(), v->nbytes)) << t.name;
  }
  EXPECT_EQ(f->find("__metadata__"), nullptr);
  EXPECT_EQ(f->find("nope"), nullptr);
  EXPECT_EQ(f->find("scalar")->numel(), 1);

  const auto f32 = to_float_vector(*f->find("w.f32"));
  EXPECT_EQ(f32[1], -2.5f);
  EXPECT_EQ(f32[2], 3.14159f);
  EXPECT_TRUE(std::signbit(f32[4]));
  EXPECT_EQ(to_float_vector(*f->find("w.f16")),
            (std::vector<float>{0.5f, -1.0f, 2.0f, 1024.0f, -0.125f, 3.0f}));
  const auto bf = to_float_vector(*f->find("a.bf16"));
  EXPECT_EQ(bf[0], 1.0f);
  EXPECT_EQ(bf[1], -2.5f);
  EXPECT_EQ(bf[2], 100.0f);
  EXPECT_EQ(bf[3], bf16_to_float(float_to_bf16(1e-3f)));
}

TEST(Safetensors, HeaderPaddedAndDataAligned) {
  TempDir dir;
  const auto path = dir / "t.safetensors";
  write_safetensors(path, sample_tensors());
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->file_size(), bytes.size());
  // "a.bf16" sorts first, so it starts the data section, which the padding keeps aligned.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->find("a.bf16")->data) % 8, 0u);
}

TEST(Safetensors, WriterRejectsWrongByteCountAndDuplicates) {
  TempDir dir;
  expect_error(
      [&] {
        write_safetensors(dir / "x.safetensors",
                          {{"bad", DType::F32, {3}, to_bytes(std::vector<float>{1, 2})}});
      },
      {"'bad'", "8 bytes", "needs 12"});
  expect_error(
      [&] {
        write_safetensors(dir / "x.safetensors",
                          {{"a", DType::F32, {}, to_bytes(std::vector<float>{1})},
                           {"a", DType::F32, {}, to_bytes(std::vector<float>{1})}});
      },
      {"duplicate tensor 'a'"});
}

TEST(Bf16, HandCheckedValues) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(-2.5f), 0xC020);
  EXPECT_EQ(float_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  // 65504 = 0x477FE000: dropped half 0xE000 > 0x8000 rounds up to 65536.
  EXPECT_EQ(float_to_bf16(65504.0f), 0x4780);
  EXPECT_EQ(bf16_to_float(0x4780), 65536.0f);
  // Smallest bf16 subnormal: 2^-133.
  EXPECT_EQ(bf16_to_float(0x0001), std::ldexp(1.0f, -133));
  EXPECT_EQ(float_to_bf16(std::ldexp(1.0f, -133)), 0x0001);
  // Ties go to even: 1 + 2^-8 lies halfway between 0x3F80 and 0x3F81.
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3F808000)), 0x3F80);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3F818000)), 0x3F82);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3F808001)), 0x3F81);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3F807FFF)), 0x3F80);
  // Infinities, overflow and NaN (a NaN with only low payload bits must not become inf).
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(bits_to_float(0x7F800001)))));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(bits_to_float(0xFF800001)))));
}

TEST(Bf16, EveryValueRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f))));
    } else {
      ASSERT_EQ(float_to_bf16(f), h) << std::hex << h;
    }
  }
}

TEST(F16, HandCheckedValues) {
  EXPECT_EQ(float_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(float_to_f16(-2.5f), 0xC100);
  EXPECT_EQ(float_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f16_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(float_to_f16(65519.0f), 0x7BFF);  // below the midpoint to 65536
  EXPECT_EQ(float_to_f16(65520.0f), 0x7C00);  // tie; even neighbour is "65536" = inf
  EXPECT_EQ(float_to_f16(1e10f), 0x7C00);
  EXPECT_EQ(float_to_f16(-std::numeric_limits<float>::infinity()), 0xFC00);
  // Smallest subnormal 2^-24; half of it is a tie that rounds to even (zero).
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(float_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(float_to_f16(std::ldexp(1.5f, -24)), 0x0002);     // 1.5 ulp: tie -> 2
  EXPECT_EQ(float_to_f16(std::ldexp(2.5f, -24)), 0x0002);     // 2.5 ulp: tie -> 2
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(float_to_f16(std::ldexp(1023.5f, -24)), 0x0400);  // subnormal rounds up to normal
  // Normal ties: 1 + 2^-11 is halfway between 0x3C00 and 0x3C01.
  EXPECT_EQ(float_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(float_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(float_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  const uint16_t nan = float_to_f16(std::nanf(""));
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  EXPECT_TRUE(std::isnan(f16_to_float(nan)));
  EXPECT_TRUE(std::isinf(f16_to_float(0x7C00)));
}

TEST(F16, EveryValueRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(f))));
    } else {
      ASSERT_EQ(float_to_f16(f), h) << std::hex << h;
    }
  }
}

TEST(Safetensors, TruncatedFileNamesTheFile) {
  TempDir dir;
  const auto good = dir / "good.safetensors";
  write_safetensors(good, sample_tensors());
  const std::string bytes = read_file(good);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  const size_t header_end = 8 + header_len;
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, header_end / 2,
                     header_end - 1, header_end, header_end + 1, bytes.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const auto bad = dir / "cut.safetensors";
    write_file(bad, bytes.substr(0, cut));
    expect_error([&] { SafetensorsFile::open(bad); }, {bad.string()});
  }
}

TEST(Safetensors, MissingFile) {
  TempDir dir;
  expect_error([&] { SafetensorsFile::open(dir / "absent.safetensors"); },
               {"absent.safetensors", "cannot open"});
}

TEST(Safetensors, HeaderLengthPastEnd) {
  TempDir dir;
  const auto p = dir / "x.safetensors";
  std::string s = raw_file("{}", 0);
  s[0] = static_cast<char>(0xE8);  // 1000
  s[1] = 0x03;
  write_file(p, s);
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "header length 1000"});
  s[7] = static_cast<char>(0xFF);  // absurd length must not overflow the bounds check
  write_file(p, s);
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "past the end"});
}

TEST(Safetensors, DataOffsetsPastEnd) {
  TempDir dir;
  const auto p = dir / "x.safetensors";
  write_file(p, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "'a'", "past the end"});
}

TEST(Safetensors, SizeNotMatchingShape) {
  TempDir dir;
  const auto p = dir / "x.safetensors";
  write_file(p, raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "'a'", "8 bytes", "needs 12"});
  write_file(p, raw_file(R"({"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,4]}})", 8));
  expect_error([&] { SafetensorsFile::open(p); }, {"'a'", "[2, 2]", "needs 8"});
  // A hostile shape whose element count overflows must not wrap around the check.
  write_file(
      p,
      raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})",
               8));
  expect_error([&] { SafetensorsFile::open(p); }, {"'a'", "shape"});
  // Zero elements, but TensorView::numel() would overflow int64 on the way (2^32 * 2^31):
  // undefined behaviour (UBSan; fuzz/corpus/safetensors/crash-numel-int64-overflow.*).
  write_file(
      p, raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,2147483648,0],"data_offsets":[0,0]}})",
                  0));
  expect_error([&] { SafetensorsFile::open(p); }, {"'a'", "shape"});
}

TEST(Safetensors, OverlappingTensors) {
  TempDir dir;
  const auto p = dir / "x.safetensors";
  write_file(p, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         12));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "'a'", "'b'", "overlap"});
}

TEST(Safetensors, DuplicateTensorName) {
  // A JSON object keeps the last duplicate key: without the check, 'a' would silently be the
  // second entry (or, with the same range twice, pass as one tensor).
  TempDir dir;
  const auto p = dir / "x.safetensors";
  write_file(p, raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                         R"("a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         12));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "tensor 'a' more than once"});
  // nested keys of the same name (dtype, shape, ...) in different entries are not duplicates
  write_file(p, raw_file(R"({"__metadata__":{"format":"pt"},)"
                         R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         8));
  EXPECT_EQ(SafetensorsFile::open(p)->tensors().size(), 2u);
  // a repeated key inside one entry is an error too (which shape is meant?)
  write_file(p,
             raw_file(R"({"a":{"dtype":"F32","shape":[1],"shape":[2],"data_offsets":[0,4]}})", 4));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "key 'shape' appears twice"});
}

TEST(Safetensors, UnsupportedDtype) {
  TempDir dir;
  const auto p = dir / "x.safetensors";
  write_file(p, raw_file(R"({"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8));
  expect_error([&] { SafetensorsFile::open(p); },
               {p.string(), "tensor 'x' has unsupported dtype I64"});
}

TEST(Safetensors, InvalidHeaderJson) {
  TempDir dir;
  const auto p = dir / "x.safetensors";
  write_file(p, raw_file("{\"a\": [1, 2,    ", 0));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "invalid header JSON"});
  write_file(p, raw_file("[1, 2]  ", 0));
  expect_error([&] { SafetensorsFile::open(p); }, {p.string(), "not a JSON object"});
  write_file(p, raw_file(R"({"a":{"dtype":"F32","shape":[1]}})", 4));
  expect_error([&] { SafetensorsFile::open(p); }, {"'a'", "data_offsets"});
  write_file(p, raw_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4));
  expect_error([&] { SafetensorsFile::open(p); }, {"'a'", "shape"});
}

TEST(Safetensors, MetadataIsSkippedAndEmptyFileWorks) {
  TempDir dir;
  const auto p = dir / "x.safetensors";
  write_file(p, raw_file(R"({"__metadata__":{"format":"pt"}})", 0));
  EXPECT_TRUE(SafetensorsFile::open(p)->tensors().empty());
}

TEST(Safetensors, ParseInMemoryMatchesTheFile) {
  TempDir dir;
  const auto p = dir / "x.safetensors";
  write_safetensors(p, sample_tensors());
  const std::string bytes = read_file(p);
  const auto file = SafetensorsFile::open(p);
  const auto mem = parse_safetensors(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(),
                                     "in-memory");
  ASSERT_EQ(mem.size(), file->tensors().size());
  for (const auto& [name, t] : file->tensors()) {
    const TensorView& m = mem.at(name);
    EXPECT_EQ(m.shape, t.shape) << name;
    EXPECT_EQ(m.nbytes, t.nbytes) << name;
    EXPECT_EQ(to_float_vector(m), to_float_vector(t)) << name;
  }
  expect_error(
      [&] { parse_safetensors(reinterpret_cast<const std::byte*>(bytes.data()), 7, "in-memory"); },
      {"'in-memory'", "too short"});
}

// ---- WeightStore ----

std::vector<TensorData> model_tensors() {
  std::vector<TensorData> out;
  for (int i = 0; i < 5; ++i) {
    std::vector<uint16_t> v(6 + i);
    for (size_t k = 0; k < v.size(); ++k) v[k] = float_to_bf16(0.25f * (k + 1) * (i + 1));
    out.push_back({"model.layers." + std::to_string(i) + ".w",
                   DType::BF16,
                   {static_cast<int64_t>(v.size())},
                   to_bytes(v)});
  }
  return out;
}

void write_index(const std::filesystem::path& dir, const std::map<std::string, std::string>& map) {
  nlohmann::json j = {{"metadata", {{"total_size", 0}}}, {"weight_map", map}};
  write_file(dir / "model.safetensors.index.json", j.dump(2));
}

TEST(WeightStore, SingleFile) {
  TempDir dir;
  write_safetensors(dir / "model.safetensors", model_tensors());
  const auto ws = WeightStore::open(dir.path());
  EXPECT_EQ(ws.names().size(), 5u);
  EXPECT_TRUE(ws.has("model.layers.3.w"));
  EXPECT_FALSE(ws.has("model.layers.9.w"));
  EXPECT_EQ(ws.get("model.layers.3.w", {9}).nbytes, 18u);
  EXPECT_EQ(ws.total_bytes(), 2u * (6 + 7 + 8 + 9 + 10));
}

TEST(WeightStore, ShardedMatchesSingleFile) {
  TempDir single, sharded;
  const auto all = model_tensors();
  write_safetensors(single / "model.safetensors", all);
  write_safetensors(sharded / "model-00001-of-00002.safetensors", {all[0], all[1], all[2]});
  write_safetensors(sharded / "model-00002-of-00002.safetensors", {all[3], all[4]});
  std::map<std::string, std::string> map;
  for (int i = 0; i < 5; ++i) {
    map[all[i].name] =
        i < 3 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_index(sharded.path(), map);

  const auto a = WeightStore::open(single.path());
  const auto b = WeightStore::open(sharded.path());
  ASSERT_EQ(a.names(), b.names());
  EXPECT_EQ(a.total_bytes(), b.total_bytes());
  for (const auto& name : a.names()) {
    const auto& ta = a.get(name);
    const auto& tb = b.get(name);
    EXPECT_EQ(ta.shape, tb.shape);
    EXPECT_EQ(ta.dtype, tb.dtype);
    EXPECT_EQ(to_float_vector(ta), to_float_vector(tb)) << name;
  }
}

TEST(WeightStore, IndexPointingAtMissingShard) {
  TempDir dir;
  const auto all = model_tensors();
  write_safetensors(dir / "model-00001-of-00002.safetensors", {all[0]});
  write_index(dir.path(), {{all[0].name, "model-00001-of-00002.safetensors"},
                           {all[1].name, "model-00002-of-00002.safetensors"}});
  expect_error([&] { WeightStore::open(dir.path()); },
               {"model-00002-of-00002.safetensors", "does not exist"});
}

TEST(WeightStore, IndexListsTensorMissingFromShard) {
  TempDir dir;
  const auto all = model_tensors();
  write_safetensors(dir / "model-00001-of-00001.safetensors", {all[0]});
  write_index(dir.path(), {{all[0].name, "model-00001-of-00001.safetensors"},
                           {all[1].name, "model-00001-of-00001.safetensors"}});
  expect_error([&] { WeightStore::open(dir.path()); },
               {"'" + all[1].name + "'", "model-00001-of-00001.safetensors", "missing"});
}

TEST(WeightStore, BadIndex) {
  TempDir dir;
  write_file(dir / "model.safetensors.index.json", "{\"weight_map\": ");
  expect_error([&] { WeightStore::open(dir.path()); },
               {"model.safetensors.index.json", "invalid JSON"});
  write_file(dir / "model.safetensors.index.json", "{\"metadata\": {}}");
  expect_error([&] { WeightStore::open(dir.path()); }, {"weight_map"});
  write_file(dir / "model.safetensors.index.json",
             R"({"weight_map": {"a": "../evil.safetensors"}})");
  expect_error([&] { WeightStore::open(dir.path()); }, {"'a'", "invalid shard"});
  // a name longer than any file system allows (fuzzer find: std::filesystem::exists threw)
  write_file(dir / "model.safetensors.index.json",
             R"({"weight_map": {"a": "model-)" + std::string(300, '9') + R"(.safetensors"}})");
  expect_error([&] { WeightStore::open(dir.path()); }, {"'a'", "invalid shard", "318 bytes"});
  // a tensor mapped to two shards: JSON keeps the last one silently, dapx refuses
  write_file(dir / "model.safetensors.index.json",
             R"({"metadata": {"total_size": 8}, "weight_map": {"a": "model-1.safetensors", )"
             R"("b": "model-1.safetensors", "a": "model-2.safetensors"}})");
  expect_error([&] { WeightStore::open(dir.path()); },
               {"model.safetensors.index.json", "weight_map names tensor 'a' more than once"});
  write_file(dir / "model.safetensors.index.json",
             R"({"metadata": {"total_size": 8, "total_size": 9}, "weight_map": {}})");
  expect_error([&] { WeightStore::open(dir.path()); }, {"key 'total_size' appears twice"});
}

TEST(WeightStore, AnInaccessiblePathIsAnErrorNamingIt) {
  // exists() reports "File name too long" (or a component that is not a directory) by
  // throwing std::filesystem::filesystem_error; path_exists() turns it into a dapx::Error
  expect_error([&] { path_exists(std::string(5000, 'a')); }, {"cannot access 'aaaa", "..."});
  TempDir dir;
  write_file(dir / "file", "x");
  EXPECT_FALSE(path_exists(dir / "missing"));
  EXPECT_TRUE(path_exists(dir / "file"));
  expect_error([&] { WeightStore::open(dir / "file" / std::string(5000, 'b')); },
               {"cannot access"});
}

TEST(WeightStore, NoWeights) {
  TempDir dir;
  expect_error([&] { WeightStore::open(dir.path()); },
               {"no model.safetensors or model.safetensors.index.json in", dir.path().string()});
}

TEST(WeightStore, GetErrors) {
  TempDir dir;
  write_safetensors(dir / "model.safetensors",
                    {{"w", DType::F32, {2, 3}, to_bytes(std::vector<float>(6, 1.0f))}});
  const auto ws = WeightStore::open(dir.path());
  expect_error([&] { ws.get("lm_head.weight"); },
               {"missing tensor 'lm_head.weight' in", dir.path().string()});
  expect_error([&] { ws.get("w", {3, 2}); }, {"tensor 'w' has shape [2, 3], expected [3, 2]"});
  EXPECT_EQ(ws.get("w", {2, 3}).numel(), 6);
}

TEST(WeightStore, StoreOutlivesMove) {
  TempDir dir;
  write_safetensors(dir / "model.safetensors", model_tensors());
  auto ws = WeightStore::open(dir.path());
  WeightStore moved = std::move(ws);
  EXPECT_EQ(to_float_vector(moved.get("model.layers.0.w"))[0], 0.25f);
}

}  // namespace
}  // namespace dapx
