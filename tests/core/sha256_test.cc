// SHA-256 against the FIPS 180-2 / NIST CAVP example vectors, and sha256_file against the
// coreutils `sha256sum` of the same file.
#include "core/sha256.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "core/check.h"

namespace umbra {
namespace {

TEST(Sha256, FipsAbc) {
  EXPECT_EQ(sha256_hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, FipsEmpty) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, FipsTwoBlockMessage) {
  const std::string m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(m.data(), m.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, FipsMillionAIncremental) {
  // Uneven pieces so updates straddle the 64-byte block boundary.
  const std::string chunk(997, 'a');
  Sha256 h;
  size_t left = 1000000;
  while (left > 0) {
    const size_t n = std::min(left, chunk.size());
    h.update(chunk.data(), n);
    left -= n;
  }
  EXPECT_EQ(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

class Sha256File : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/umbra_sha256_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string dir_;
};

std::string run(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[256];
  while (std::fgets(buf, sizeof(buf), p)) out += buf;
  pclose(p);
  return out;
}

TEST_F(Sha256File, MatchesVectorAndSha256sum) {
  const std::string small = dir_ + "/abc.txt";
  std::ofstream(small) << "abc";
  EXPECT_EQ(sha256_file(small), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  // Larger than the 1 MiB read buffer, with bytes of every value.
  const std::string big = dir_ + "/big.bin";
  {
    std::ofstream out(big, std::ios::binary);
    for (int i = 0; i < 3 * (1 << 20) + 12345; ++i)
      out.put(static_cast<char>((i * 131) ^ (i >> 9)));
  }
  const std::string reference = run("sha256sum '" + big + "'").substr(0, 64);
  ASSERT_EQ(reference.size(), 64u);
  EXPECT_EQ(sha256_file(big), reference);
}

TEST_F(Sha256File, MissingFileNamesIt) {
  const std::string path = dir_ + "/does_not_exist.bin";
  try {
    sha256_file(path);
    FAIL() << "expected umbra::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace umbra
