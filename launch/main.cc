// The `umbra` executable: verbs register themselves (launch/verb.h); this file only maps
// outcomes to exit codes — 0 success, 1 failure (one-line reason first), 2 bad usage.
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "core/check.h"
#include "core/log.h"
#include "launch/verb.h"

namespace {

// glibc serves an allocation above M_MMAP_THRESHOLD (dynamic, at most 32 MiB by default) with
// fresh pages from mmap and unmaps them on free, so every large LibTorch activation page-faults
// again on every step: the autoencoder step at batch 256 ran ~4x slower than 4x its batch-64 step
// (silu alone 65.6 ms -> 969 ms; bench/README.md, "C++ trainer step vs Python"). Keeping large
// blocks in the heap (and not trimming it) costs only that freed memory stays with the process
// until it exits. A user's own MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ wins.
void keep_large_allocations_in_heap() {
  constexpr int kOneGiB = 1 << 30;
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, kOneGiB);
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) mallopt(M_TRIM_THRESHOLD, kOneGiB);
}

int run(int argc, char** argv) {
  CLI::App app{"Umbra: differentially private latent diffusion, data-parallel with MPI", "umbra"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "umbra 0.1.0");
  app.footer("Run `umbra VERB --help` for the options of each verb.");
  umbra::add_registered_verbs(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  return umbra::exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  keep_large_allocations_in_heap();
  umbra::init_logging(0);
  try {
    return run(argc, argv);
  } catch (const umbra::UsageError& e) {
    std::fprintf(stderr, "umbra: usage error: %s\n", e.what());
    return 2;
  } catch (const umbra::Error& e) {
    std::fprintf(stderr, "umbra: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "umbra: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "umbra: error: %s\n", e.what());
    return 1;
  }
}
