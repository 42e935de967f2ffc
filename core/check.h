// Errors and checks (STYLE.md "Two kinds of failure, never mixed").
//
// - A user, config or data error throws umbra::Error (exit code 1) or umbra::UsageError (exit
//   code 2) whose message names the file/field/value and what was expected:
//       UMBRA_CHECK(n > 0, "data.path '", path, "': expected at least one shard, found none");
// - A broken internal invariant is a bug: UMBRA_ASSERT prints file:line and aborts.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace umbra {

// A failure the user can fix (bad input, bad config, missing file). Exit code 1.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Bad command-line usage. Exit code 2.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(what) {}
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}
[[noreturn]] void assert_fail(const char* cond, const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace umbra

#define UMBRA_CHECK(cond, ...)                                               \
  do {                                                                       \
    if (!(cond)) throw ::umbra::Error(::umbra::detail::concat(__VA_ARGS__)); \
  } while (0)

#define UMBRA_FAIL(...) throw ::umbra::Error(::umbra::detail::concat(__VA_ARGS__))

#define UMBRA_USAGE_CHECK(cond, ...)                                              \
  do {                                                                            \
    if (!(cond)) throw ::umbra::UsageError(::umbra::detail::concat(__VA_ARGS__)); \
  } while (0)

// UMBRA_ASSERT(cond, "message", values...): the message is required.
#define UMBRA_ASSERT(cond, ...)                                           \
  do {                                                                    \
    if (!(cond))                                                          \
      ::umbra::detail::assert_fail(#cond, __FILE__, __LINE__,             \
                                   ::umbra::detail::concat(__VA_ARGS__)); \
  } while (0)
