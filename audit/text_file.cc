#include "audit/text_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/check.h"
#include "trainer/checkpoint.h"

namespace umbra {

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    UMBRA_CHECK(out.good(), path, ": cannot open for writing: ", std::strerror(errno));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    UMBRA_CHECK(out.good(), path, ": write failed");
  }
  fsync_path(tmp);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp);
  UMBRA_CHECK(!ec, path, ": cannot rename the temporary file into place: ", ec.message());
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  UMBRA_CHECK(in.good(), path, ": cannot open for reading: ", std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  UMBRA_CHECK(!in.bad(), path, ": read failed");
  return buffer.str();
}

}  // namespace umbra
