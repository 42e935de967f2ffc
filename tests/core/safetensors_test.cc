// safetensors: round trips of every dtype, an independent Python reader/writer
// (tests/core/read_safetensors.py: numpy + json + struct, from the spec) in both directions, and
// one malformed file per validation rule, each of which must throw umbra::Error naming the file.
#include "core/safetensors.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/check.h"

namespace umbra {
namespace {

using nlohmann::json;

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/umbra_safetensors_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

void expect_same(const TensorMap& expected, const TensorMap& got) {
  ASSERT_EQ(expected.size(), got.size());
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(got.count(name)) << name;
    const torch::Tensor& g = got.at(name);
    EXPECT_EQ(g.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(g.sizes(), t.sizes()) << name;
    EXPECT_TRUE(g.is_contiguous()) << name;
    EXPECT_TRUE(torch::equal(g, t.contiguous())) << name;
  }
}

// Something of every supported dtype, with values that exercise sign and fraction bits.
TensorMap every_dtype() {
  torch::manual_seed(3);
  const torch::Tensor r = torch::randn({3, 5}, torch::kDouble) * 100;
  return {
      {"f64", r},
      {"f32", r.to(torch::kFloat)},
      {"f16", r.to(torch::kHalf)},
      {"bf16", r.to(torch::kBFloat16)},
      {"i64", (r * 1e12).to(torch::kLong)},
      {"i32", (r * 1e6).to(torch::kInt)},
      {"i16", r.to(torch::kShort)},
      {"i8", r.clamp(-128, 127).to(torch::kChar)},
      {"u8", r.abs().clamp(0, 255).to(torch::kByte)},
      {"bool", r > 0},
  };
}

TEST_F(Safetensors, RoundTripEveryDtype) {
  const TensorMap tensors = every_dtype();
  save_safetensors(path("all.safetensors"), tensors);
  const SafetensorsFile f = load_safetensors(path("all.safetensors"));
  expect_same(tensors, f.tensors);
  EXPECT_TRUE(f.metadata.empty());
}

TEST_F(Safetensors, RoundTripNonContiguousEmptyAndScalar) {
  const torch::Tensor base = torch::arange(24, torch::kFloat).reshape({2, 3, 4});
  const TensorMap tensors = {
      {"transposed", base.transpose(0, 2)},
      {"strided", base.select(1, 1).slice(1, 0, 4, 2)},
      {"offset_view", base.flatten().slice(0, 5, 17).view({3, 4})},
      {"expanded", torch::tensor({1.0, 2.0}).expand({3, 2})},
      {"empty", torch::empty({0, 7}, torch::kLong)},
      {"empty_1d", torch::empty({0}, torch::kBFloat16)},
      {"scalar", torch::tensor(2.5, torch::kDouble)},
      {"scalar_bool", torch::tensor(true)},
  };
  ASSERT_FALSE(tensors.at("transposed").is_contiguous());
  save_safetensors(path("views.safetensors"), tensors);
  const SafetensorsFile f = load_safetensors(path("views.safetensors"));
  expect_same(tensors, f.tensors);
  EXPECT_EQ(f.tensors.at("scalar").dim(), 0);
  EXPECT_EQ(f.tensors.at("scalar").item<double>(), 2.5);
}

TEST_F(Safetensors, OnlyEmptyTensorsAndNoTensors) {
  save_safetensors(path("e.safetensors"), {{"e", torch::empty({0})}}, {{"k", "v"}});
  SafetensorsFile f = load_safetensors(path("e.safetensors"));
  EXPECT_EQ(f.tensors.at("e").numel(), 0);
  EXPECT_EQ(f.metadata.at("k"), "v");
  save_safetensors(path("none.safetensors"), {});
  f = load_safetensors(path("none.safetensors"));
  EXPECT_TRUE(f.tensors.empty());
}

TEST_F(Safetensors, MetadataRoundTrip) {
  const Metadata metadata = {{"format", "pt"},
                             {"config", "{\"a\": [1, 2]}"},
                             {"quotes \" and \\ slashes", "line\nbreak"},
                             {"unicode", "\xce\xb5 = 1.0"}};
  save_safetensors(path("m.safetensors"), {{"w", torch::ones({2})}}, metadata);
  EXPECT_EQ(load_safetensors(path("m.safetensors")).metadata, metadata);
}

TEST_F(Safetensors, HeaderIsPaddedToEightBytesWithSpaces) {
  for (int extra = 0; extra < 9; ++extra) {
    const std::string name = "t" + std::string(extra, 'x');
    save_safetensors(path("p.safetensors"), {{name, torch::ones({1})}});
    std::ifstream in(path("p.safetensors"), std::ios::binary);
    uint8_t len_bytes[8];
    in.read(reinterpret_cast<char*>(len_bytes), 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
    EXPECT_EQ(n % 8, 0u) << name;
    std::string header(n, '\0');
    in.read(header.data(), n);
    const size_t close = header.rfind('}');
    ASSERT_NE(close, std::string::npos);
    EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << header;
    EXPECT_EQ(header[0], '{');
  }
}

TEST_F(Safetensors, OverwritesAtomicallyAndLeavesNoTemporaryFiles) {
  save_safetensors(path("w.safetensors"), {{"a", torch::zeros({4})}});
  save_safetensors(path("w.safetensors"), {{"b", torch::ones({2})}});
  const SafetensorsFile f = load_safetensors(path("w.safetensors"));
  EXPECT_EQ(f.tensors.size(), 1u);
  EXPECT_TRUE(f.tensors.count("b"));
  const std::string listing = dir_ + "/listing";
  std::system(("ls -A '" + dir_ + "' > '" + listing + "'").c_str());
  std::stringstream names;
  names << std::ifstream(listing).rdbuf();
  EXPECT_EQ(names.str(), "listing\nw.safetensors\n");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("unexpected exception type: ") + e.what();
  }
  return "no exception";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

TEST_F(Safetensors, SaveRejectsBadInputAndKeepsOldFile) {
  const std::string p = path("keep.safetensors");
  save_safetensors(p, {{"old", torch::ones({3})}});
  std::string msg = error_of([&] {
    save_safetensors(p, {{"a", torch::ones({2})}, {"c", torch::ones({2}, torch::kComplexFloat)}});
  });
  EXPECT_CONTAINS(msg, p);
  EXPECT_CONTAINS(msg, "'c'");
  msg = error_of([&] { save_safetensors(p, {{"__metadata__", torch::ones({1})}}); });
  EXPECT_CONTAINS(msg, "__metadata__");
  msg = error_of([&] { save_safetensors(p, {{"u", torch::Tensor()}}); });
  EXPECT_CONTAINS(msg, "'u'");
  EXPECT_TRUE(load_safetensors(p).tensors.count("old"));

  const std::string nowhere = path("no/such/dir/x.safetensors");
  msg = error_of([&] { save_safetensors(nowhere, {{"a", torch::ones({1})}}); });
  EXPECT_CONTAINS(msg, nowhere);
}

TEST_F(Safetensors, LoadMissingFileOrDirectory) {
  const std::string missing = path("missing.safetensors");
  EXPECT_CONTAINS(error_of([&] { load_safetensors(missing); }), missing);
  EXPECT_CONTAINS(error_of([&] { load_safetensors(dir_); }), dir_);
}

// ---- the independent Python reader/writer ----

std::string run(const std::string& command, int* status) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

std::string script() { return std::string(UMBRA_SOURCE_DIR) + "/tests/core/read_safetensors.py"; }

// Compares tensors with the JSON the Python reader printed for them (values exact: every dtype's
// values are representable in a double or an int64, which Python prints exactly).
void expect_matches_python(const TensorMap& tensors, const json& py) {
  const json& pt = py.at("tensors");
  ASSERT_EQ(pt.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(pt.contains(name));
    const json& e = pt.at(name);
    EXPECT_EQ(e.at("shape").get<std::vector<int64_t>>(), t.sizes().vec());
    const torch::Tensor flat = t.contiguous().reshape({-1});
    const json& values = e.at("values");
    ASSERT_EQ(static_cast<int64_t>(values.size()), flat.numel());
    const std::string dtype = e.at("dtype");
    for (int64_t i = 0; i < flat.numel(); ++i) {
      if (dtype == "BOOL") {
        ASSERT_EQ(values[i].get<bool>(), flat[i].item<bool>()) << i;
      } else if (dtype[0] == 'I' || dtype == "U8") {
        ASSERT_EQ(values[i].get<int64_t>(), flat[i].item<int64_t>()) << i;
      } else {
        ASSERT_EQ(values[i].get<double>(), flat[i].item<double>()) << i;
      }
    }
  }
}

TEST_F(Safetensors, PythonReaderReadsUmbraFile) {
  TensorMap tensors = every_dtype();
  tensors["view"] = torch::arange(12, torch::kInt).reshape({3, 4}).t();
  tensors["empty"] = torch::empty({2, 0}, torch::kHalf);
  tensors["scalar"] = torch::tensor(-7, torch::kLong);
  const Metadata metadata = {{"format", "pt"}, {"stage", "autoencoder"}};
  const std::string file = path("for_python.safetensors");
  save_safetensors(file, tensors, metadata);

  int status = 0;
  const std::string out = run(std::string(UMBRA_PYTHON) + " " + script() + " " + file, &status);
  ASSERT_EQ(status, 0) << out;
  const json py = json::parse(out);
  EXPECT_EQ(py.at("metadata").get<Metadata>(), metadata);
  EXPECT_EQ(py.at("header_bytes").get<uint64_t>() % 8, 0u);
  expect_matches_python(tensors, py);
  EXPECT_EQ(py.at("tensors").at("f16").at("dtype"), "F16");
  EXPECT_EQ(py.at("tensors").at("bf16").at("dtype"), "BF16");
  EXPECT_EQ(py.at("tensors").at("bool").at("dtype"), "BOOL");
}

TEST_F(Safetensors, UmbraReadsPythonWrittenFile) {
  const std::string file = path("from_python.safetensors");
  int status = 0;
  run(std::string(UMBRA_PYTHON) + " " + script() + " --write " + file, &status);
  ASSERT_EQ(status, 0);
  const std::string out = run(std::string(UMBRA_PYTHON) + " " + script() + " " + file, &status);
  ASSERT_EQ(status, 0) << out;
  const json py = json::parse(out);

  const SafetensorsFile f = load_safetensors(file);
  EXPECT_EQ(f.metadata.at("writer"), "read_safetensors.py");
  expect_matches_python(f.tensors, py);
  EXPECT_EQ(f.tensors.at("c_f16").scalar_type(), torch::kHalf);
  EXPECT_EQ(f.tensors.at("d_bf16").scalar_type(), torch::kBFloat16);
  EXPECT_EQ(f.tensors.at("j_bool").scalar_type(), torch::kBool);
  EXPECT_EQ(f.tensors.at("l_scalar").dim(), 0);
}

// ---- malformed files ----

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

// A file with `header` as its JSON and `data` as its data section.
std::string file_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

class Malformed : public Safetensors {
 protected:
  // Writes `bytes`, loads it both from the file and from memory, and returns the message;
  // both must be an umbra::Error naming the origin.
  std::string load_error(const std::string& bytes) {
    const std::string file = path("bad_" + std::to_string(counter_++) + ".safetensors");
    std::ofstream(file, std::ios::binary) << bytes;
    const std::string msg = error_of([&] { load_safetensors(file); });
    EXPECT_CONTAINS(msg, file);
    const std::string mem = error_of([&] {
      parse_safetensors("memory.safetensors", reinterpret_cast<const uint8_t*>(bytes.data()),
                        bytes.size());
    });
    EXPECT_CONTAINS(mem, "memory.safetensors");
    return msg;
  }
  int counter_ = 0;
};

const std::string k8(8, 'x');  // 8 data bytes

TEST_F(Malformed, FileShorterThanHeaderLength) {
  EXPECT_CONTAINS(load_error(""), "at least 8");
  EXPECT_CONTAINS(load_error("\x05\x00\x00"), "at least 8");
}

TEST_F(Malformed, HeaderLengthBeyondFileOrCap) {
  EXPECT_CONTAINS(load_error(le64(100) + "{}"), "header length 100");
  EXPECT_CONTAINS(load_error(le64(uint64_t{1} << 62) + "{}"), "exceeds the limit");
  EXPECT_CONTAINS(load_error(le64(UINT64_MAX) + "{}"), "exceeds the limit");
}

TEST_F(Malformed, HeaderNotJsonOrNotObject) {
  EXPECT_CONTAINS(load_error(file_bytes("{\"a\": ", "")), "not valid JSON");
  EXPECT_CONTAINS(load_error(file_bytes("{\"a\": 1} trailing", "")), "not valid JSON");
  EXPECT_CONTAINS(load_error(file_bytes(std::string("{\0}", 3), "")), "not valid JSON");
  EXPECT_CONTAINS(load_error(file_bytes("{\"\xff\": 1}", "")), "not valid JSON");
  EXPECT_CONTAINS(load_error(file_bytes("[1, 2]", "")), "expected a JSON object");
  EXPECT_CONTAINS(load_error(file_bytes("\"text\"", "")), "expected a JSON object");
}

TEST_F(Malformed, EntryFieldsOfWrongType) {
  const auto entry = [](const std::string& body) {
    return file_bytes("{\"w\": " + body + "}", k8);
  };
  EXPECT_CONTAINS(load_error(entry("[1]")), "tensor 'w': expected an object");
  EXPECT_CONTAINS(load_error(entry("{\"shape\": [2], \"data_offsets\": [0, 8]}")),
                  "missing field 'dtype'");
  EXPECT_CONTAINS(load_error(entry("{\"dtype\": 4, \"shape\": [2], \"data_offsets\": [0, 8]}")),
                  "dtype: expected a string");
  EXPECT_CONTAINS(load_error(entry("{\"dtype\": \"F32\", \"data_offsets\": [0, 8]}")),
                  "missing field 'shape'");
  EXPECT_CONTAINS(load_error(entry("{\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}")),
                  "shape: expected an array");
  EXPECT_CONTAINS(
      load_error(entry("{\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}")),
      "non-negative integers");
  EXPECT_CONTAINS(
      load_error(entry("{\"dtype\": \"F32\", \"shape\": [2.0], \"data_offsets\": [0, 8]}")),
      "non-negative integers");
  EXPECT_CONTAINS(load_error(entry("{\"dtype\": \"F32\", \"shape\": [2]}")),
                  "missing field 'data_offsets'");
  EXPECT_CONTAINS(
      load_error(entry("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4, 8]}")),
      "data_offsets: expected [begin, end]");
  EXPECT_CONTAINS(
      load_error(entry("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, \"8\"]}")),
      "data_offsets: expected [begin, end]");
  EXPECT_CONTAINS(load_error(entry("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, "
                                   "8], \"extra\": 1}")),
                  "unexpected field 'extra'");
}

TEST_F(Malformed, UnknownDtype) {
  const std::string msg = load_error(
      file_bytes("{\"w\": {\"dtype\": \"F8\", \"shape\": [8], \"data_offsets\": [0, 8]}}", k8));
  EXPECT_CONTAINS(msg, "tensor 'w'");
  EXPECT_CONTAINS(msg, "\"F8\"");
  EXPECT_CONTAINS(msg, "one of F64");
}

TEST_F(Malformed, SizeDisagreesWithShape) {
  const std::string msg = load_error(
      file_bytes("{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", k8));
  EXPECT_CONTAINS(msg, "tensor 'w'");
  EXPECT_CONTAINS(msg, "expected 12");
  EXPECT_CONTAINS(
      load_error(
          file_bytes("{\"w\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [8, 0]}}", k8)),
      "begin <= end");
}

TEST_F(Malformed, ElementCountOverflows) {
  EXPECT_CONTAINS(
      load_error(file_bytes("{\"w\": {\"dtype\": \"F64\", \"shape\": [4611686018427387904, "
                            "4], \"data_offsets\": [0, 8]}}",
                            k8)),
      "overflows int64");
  EXPECT_CONTAINS(
      load_error(file_bytes("{\"w\": {\"dtype\": \"F64\", \"shape\": [4611686018427387904], "
                            "\"data_offsets\": [0, 8]}}",
                            k8)),
      "overflows 64 bits");
  // Zero elements do not excuse an overflowing shape (torch could not represent it either).
  EXPECT_CONTAINS(
      load_error(file_bytes("{\"w\": {\"dtype\": \"U8\", \"shape\": [0, 9223372036854775807, 4], "
                            "\"data_offsets\": [0, 0]}, \"x\": {\"dtype\": \"U8\", \"shape\": [8], "
                            "\"data_offsets\": [0, 8]}}",
                            k8)),
      "overflows int64");
  EXPECT_CONTAINS(
      load_error(file_bytes("{\"w\": {\"dtype\": \"U8\", \"shape\": [18446744073709551615], "
                            "\"data_offsets\": [0, 8]}}",
                            k8)),
      "non-negative integers");
}

TEST_F(Malformed, OffsetsOutOfRange) {
  const std::string msg = load_error(
      file_bytes("{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", k8));
  EXPECT_CONTAINS(msg, "tensor 'w'");
  EXPECT_CONTAINS(msg, "past the data section");
}

TEST_F(Malformed, Overlapping) {
  const std::string msg = load_error(
      file_bytes("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                 "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                 k8));
  EXPECT_CONTAINS(msg, "tensor 'b'");
  EXPECT_CONTAINS(msg, "overlap tensor 'a'");
}

TEST_F(Malformed, DataSectionNotCovered) {
  std::string msg = load_error(
      file_bytes("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", k8));
  EXPECT_CONTAINS(msg, "tensor 'w'");
  EXPECT_CONTAINS(msg, "unused");
  msg = load_error(
      file_bytes("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", k8));
  EXPECT_CONTAINS(msg, "cover only 4");
  EXPECT_CONTAINS(load_error(file_bytes("{}", k8)), "cover only 0");
}

TEST_F(Malformed, DuplicateName) {
  EXPECT_CONTAINS(load_error(file_bytes(
                      "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                      "\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                      k8)),
                  "tensor 'w' appears more than once");
}

TEST_F(Malformed, MetadataNotStringToString) {
  EXPECT_CONTAINS(load_error(file_bytes("{\"__metadata__\": {\"epochs\": 3}}", "")),
                  "__metadata__ 'epochs': expected a string");
  EXPECT_CONTAINS(load_error(file_bytes("{\"__metadata__\": [\"a\"]}", "")),
                  "__metadata__: expected an object");
}

TEST_F(Malformed, BoolBytesOtherThanZeroOrOne) {
  EXPECT_CONTAINS(load_error(file_bytes(
                      "{\"m\": {\"dtype\": \"BOOL\", \"shape\": [2], \"data_offsets\": [0, 2]}}",
                      std::string("\x01\x02", 2))),
                  "BOOL element 1");
}

TEST_F(Malformed, TruncatedCopyOfAValidFile) {
  // Every proper prefix of a valid file is rejected with an error (never a crash).
  save_safetensors(path("valid.safetensors"), every_dtype(), {{"k", "v"}});
  std::stringstream whole;
  whole << std::ifstream(path("valid.safetensors"), std::ios::binary).rdbuf();
  const std::string bytes = whole.str();
  for (size_t n = 0; n < bytes.size(); n += (n < 300 ? 1 : 37)) {
    SCOPED_TRACE(n);
    const std::string msg = error_of(
        [&] { parse_safetensors("prefix", reinterpret_cast<const uint8_t*>(bytes.data()), n); });
    EXPECT_EQ(msg.rfind("prefix: ", 0), 0u) << msg;
  }
}

}  // namespace
}  // namespace umbra
