// Every MPI call goes through UMBRA_MPI_CHECK, which turns a failure into an umbra::Error carrying
// file:line, the call and MPI_Error_string's message:
//
//   UMBRA_MPI_CHECK(MPI_Bcast(buf, n, MPI_BYTE, 0, comm));
//
// Errors are only returned (rather than aborting inside MPI) on communicators whose error handler
// is MPI_ERRORS_RETURN; Umbra sets it on every communicator it creates.
#pragma once

#include <mpi.h>

#include <string>

namespace umbra {

// "MPI_ERR_TRUNCATE: message truncated" style text for an MPI error code.
std::string mpi_error_string(int code);

namespace detail {
[[noreturn]] void mpi_fail(int code, const char* call, const char* file, int line);
}  // namespace detail

// MPI_THREAD_SINGLE/FUNNELED/SERIALIZED/MULTIPLE as a name.
const char* mpi_thread_level_name(int level);

}  // namespace umbra

#define UMBRA_MPI_CHECK(call)                                              \
  do {                                                                     \
    const int umbra_mpi_rc_ = (call);                                      \
    if (umbra_mpi_rc_ != MPI_SUCCESS)                                      \
      ::umbra::detail::mpi_fail(umbra_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)
