#include "comm/mpi_check.h"

#include "core/check.h"

namespace umbra {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) {
    return "unknown MPI error " + std::to_string(code);
  }
  return std::string(text, static_cast<size_t>(length));
}

const char* mpi_thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED:
      return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED:
      return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE:
      return "MPI_THREAD_MULTIPLE";
    default:
      return "unknown MPI thread level";
  }
}

namespace detail {
void mpi_fail(int code, const char* call, const char* file, int line) {
  throw Error(
      concat("MPI error at ", file, ":", line, ": ", call, " failed: ", mpi_error_string(code)));
}
}  // namespace detail

}  // namespace umbra
