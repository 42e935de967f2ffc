// `umbra audit --run DIR [--samples N] [--seed S] [--include-training-images] [--out DIR]`
// (DESIGN.md §9, §12), alone or under `mpirun -np N` (the k-NN search and the scoring are split
// over the ranks; rank 0 writes). The work itself is audit/audit_run.h.
#include <cstdio>
#include <iostream>

#include "audit/audit_page.h"
#include "audit/audit_run.h"
#include "comm/communicator_factory.h"
#include "comm/mpi_session.h"
#include "comm/world.h"
#include "core/log.h"
#include "launch/verb.h"
#include "trainer/train_config.h"

namespace umbra {
namespace {

void run_audit_verb(const AuditOptions& options) {
  const WorldInfo world = discover_world();
  std::unique_ptr<MpiSession> mpi;
  if (world.source == "Open MPI" || world.size > 1) mpi = std::make_unique<MpiSession>();
  init_logging(world.rank);
  // The run's own settings (threads, comm) when it has a readable config; errors about the run
  // itself are reported by run_audit with the file named.
  TrainConfig cfg;
  try {
    cfg = load_train_config(options.run_dir + "/config.yaml", {});
  } catch (const std::exception&) {
  }
  torch::set_num_threads(intra_op_threads(world.local_size, static_cast<int>(cfg.threads)));
  auto comm = make_communicator(cfg.comm, torch::kCPU);
  const nlohmann::json summary = run_audit(options, *comm);
  if (comm->rank() == 0) {
    std::cout << audit_table(summary) << "files: " << summary.value("run", std::string()) << " -> "
              << (options.out_dir.empty() ? options.run_dir + "/audit" : options.out_dir)
              << "/{summary.json,index.html}\n";
  }
  comm.reset();
}

void add_audit(CLI::App& app) {
  auto o = std::make_shared<AuditOptions>();
  auto* cmd = app.add_subcommand(
      "audit", "Memorisation, membership inference, canaries and quality of a trained run");
  cmd->add_option("--run", o->run_dir, "Run directory (both stages trained)")->required();
  cmd->add_option("--samples", o->samples, "Class-balanced samples to generate (default 1000)");
  cmd->add_option("--seed", o->seed, "Seed of the samples and the fixed MIA noise (default 0)");
  cmd->add_flag("--include-training-images", o->include_training_images,
                "Show the nearest training images in worst_pairs.png (default: redacted; never "
                "released)");
  cmd->add_option("--out", o->out_dir, "Output directory (default <run>/audit)");
  cmd->add_option("--data", o->data_dir, "Packed dataset (default: the run's data.path)");
  cmd->add_flag("--quick", o->quick,
                "Small sizes for tests and smoke runs: 200 MIA members, 1 classifier epoch on 2000 "
                "images, 3 downstream epochs, 1000 real test images");
  cmd->add_option("--members", o->members,
                  "Membership inference: members and as many non-members (default 1000)");
  cmd->add_option("--flag-rate-margin", o->flag_rate_margin,
                  "Memorisation gate margin over the held-out null rate (default 0.01)");
  cmd->add_option(
      "--classifier-epochs", o->classifier_epochs,
      "Epochs of the FID-proxy feature classifier on the real training set (default 5)");
  cmd->add_option("--downstream-epochs", o->downstream_epochs,
                  "Epochs of the DPDM downstream CNN on the samples (default 50)");
  cmd->add_option("--canary-guesses", o->canary_guesses,
                  "Canary audit: guesses r (half IN, half OUT; the rest abstained); default "
                  "min(m, max(10, m/5)) for m canaries");
  cmd->add_flag_callback(
      "--no-quality", [o] { o->quality = false; },
      "Skip the quality metrics (FID-proxy, precision/recall, downstream accuracy)");
  cmd->footer(audit_gates_help() +
              "\nWrites <out>/summary.json (all figures, the run's privacy block, the gates with "
              "pass/fail and why),\n<out>/index.html and its pictures. Exit status 0 when the "
              "audit ran, whatever its verdict\n(`umbra release` enforces the gates); 1 on bad "
              "input; 2 on bad usage.\nUnder MPI: mpirun -np N umbra audit --run DIR");
  cmd->callback([o] { run_audit_verb(*o); });
}
UMBRA_REGISTER_VERB(add_audit, 45);

}  // namespace
}  // namespace umbra
