// `umbra config`: the resolved configuration, or the documentation of every key.
#include <iostream>

#include "launch/verb.h"
#include "trainer/train_config.h"

namespace umbra {
namespace {

struct ConfigArgs {
  std::string file;
  std::vector<std::string> overrides;
  bool doc = false;
};

void add_config(CLI::App& app) {
  auto args = std::make_shared<ConfigArgs>();
  auto* cmd = app.add_subcommand(
      "config", "Print the resolved configuration (defaults + FILE + overrides), or --doc");
  cmd->add_option("--config", args->file, "YAML configuration file");
  cmd->add_option("overrides", args->overrides, "Overrides key.sub=value");
  cmd->add_flag("--doc", args->doc, "Print the markdown table of every key (configs/README.md)");
  cmd->callback([args] {
    if (args->doc) {
      const TrainConfig defaults;
      std::cout << options_to_markdown(defaults);
      return;
    }
    std::cout << resolved_yaml(load_train_config(args->file, args->overrides));
  });
}
UMBRA_REGISTER_VERB(add_config, 50);

}  // namespace
}  // namespace umbra
