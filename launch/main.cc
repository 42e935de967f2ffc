// The `umbra` executable: verbs register themselves (launch/verb.h); this file only maps
// outcomes to exit codes — 0 success, 1 failure (one-line reason first), 2 bad usage.
#include <cstdio>
#include <exception>

#include "core/check.h"
#include "core/log.h"
#include "launch/verb.h"

namespace {

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
