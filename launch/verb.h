// The `umbra` verbs register themselves here; main.cc knows none of them by name.
//
// A verb file defines a function that adds its subcommand to the app and sets the subcommand's
// callback, then registers it:
//
//   namespace {
//   void add_inspect(CLI::App& app) {
//     auto* cmd = app.add_subcommand("inspect", "Print a dataset's manifest and verify checksums");
//     auto dir = std::make_shared<std::string>();
//     cmd->add_option("DIR", *dir, "Dataset directory")->required();
//     cmd->callback([dir] { run_inspect(*dir); });
//   }
//   UMBRA_REGISTER_VERB(add_inspect, 20);
//   }  // namespace
//
// The order number sorts verbs in --help. Callbacks throw umbra::Error (exit 1) or
// umbra::UsageError (exit 2); returning normally is exit 0. A callback may call
// umbra::set_exit_code(n) to finish with another code without an exception.
#pragma once

#include <CLI/CLI.hpp>

namespace umbra {

using VerbAdder = void (*)(CLI::App&);

struct VerbRegistration {
  VerbRegistration(VerbAdder adder, int order);
};

void add_registered_verbs(CLI::App& app);
void set_exit_code(int code);
int exit_code();

}  // namespace umbra

#define UMBRA_VERB_CONCAT_(a, b) a##b
#define UMBRA_VERB_CONCAT(a, b) UMBRA_VERB_CONCAT_(a, b)
#define UMBRA_REGISTER_VERB(adder, order) \
  static ::umbra::VerbRegistration UMBRA_VERB_CONCAT(umbra_verb_, __LINE__)(adder, order)
