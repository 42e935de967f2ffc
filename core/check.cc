#include "core/check.h"

#include <cstdio>
#include <cstdlib>

namespace umbra::detail {

void assert_fail(const char* cond, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "umbra: internal error (a bug): %s:%d: assertion '%s' failed%s%s\n", file,
               line, cond, msg.empty() ? "" : ": ", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace umbra::detail
