#include "monitoring/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/check.h"

namespace umbra {

void write_file_atomically(const std::string& path, const std::string& text,
                           const std::string& what) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  UMBRA_CHECK(fd >= 0, what, " '", tmp, "': cannot create (", std::strerror(errno), ")");
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      close(fd);
      unlink(tmp.c_str());
      UMBRA_FAIL(what, " '", tmp, "': write failed (", std::strerror(err), ")");
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = fsync(fd) == 0;
  const int sync_err = errno;
  close(fd);
  if (!synced) {
    unlink(tmp.c_str());
    UMBRA_FAIL(what, " '", tmp, "': fsync failed (", std::strerror(sync_err), ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    UMBRA_FAIL(what, " '", path, "': rename from '", tmp, "' failed (", std::strerror(err), ")");
  }
}

}  // namespace umbra
