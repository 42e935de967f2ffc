// `umbra train --config FILE [key.sub=value ...]` (DESIGN.md §12), alone or under mpirun.
#include <iostream>

#include "comm/communicator_factory.h"
#include "comm/mpi_session.h"
#include "comm/world.h"
#include "core/log.h"
#include "launch/verb.h"
#include "trainer/trainer.h"

namespace umbra {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
};

void run_train(const TrainArgs& args) {
  const TrainConfig cfg = load_train_config(args.config, args.overrides);
  const WorldInfo world = discover_world();
  std::unique_ptr<MpiSession> mpi;
  if (world.source == "Open MPI" || world.size > 1) mpi = std::make_unique<MpiSession>();
  torch::set_num_threads(intra_op_threads(world.local_size, static_cast<int>(cfg.threads)));
  init_logging(world.rank);
  auto comm = make_communicator(cfg.comm, torch::kCPU);
  const TrainOutcome outcome = train(cfg, *comm);
  if (comm->rank() == 0) {
    std::cout << "run: " << outcome.run_dir << "\n" << outcome.summary.dump(2) << "\n";
  }
  comm.reset();
}

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train the autoencoder and/or the diffusion prior");
  cmd->add_option("--config", args->config, "YAML configuration (configs/README.md)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("overrides", args->overrides, "Overrides key.sub=value (e.g. run.name=x)");
  cmd->footer(
      "Stage, run name and resume are configuration keys: stage=prior, run.name=NAME, "
      "run.resume=auto|never|PATH.\nUnder MPI: mpirun -np N umbra train --config FILE");
  cmd->callback([args] { run_train(*args); });
}
UMBRA_REGISTER_VERB(add_train, 30);

}  // namespace
}  // namespace umbra
