// Rank discovery from launcher environments (comm/world.h), without MPI.
#include "comm/world.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/check.h"

namespace umbra {
namespace {

EnvLookup env_of(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    discover_world(env_of(vars));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(World, NoLauncherIsOneProcess) {
  const WorldInfo w = discover_world(env_of({}));
  EXPECT_EQ(w.rank, 0);
  EXPECT_EQ(w.size, 1);
  EXPECT_EQ(w.local_rank, 0);
  EXPECT_EQ(w.local_size, 1);
  EXPECT_EQ(w.source, "none");
}

TEST(World, OpenMpi) {
  const WorldInfo w = discover_world(env_of({{"OMPI_COMM_WORLD_RANK", "5"},
                                             {"OMPI_COMM_WORLD_SIZE", "8"},
                                             {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                             {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
                                             // lower-priority launchers are ignored
                                             {"SLURM_PROCID", "0"},
                                             {"SLURM_STEP_ID", "0"},
                                             {"RANK", "0"}}));
  EXPECT_EQ(w.source, "Open MPI");
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 4);
}

TEST(World, SlurmStepWithCompressedTaskCounts) {
  // 2 tasks on each of nodes 0-2, 1 on node 3: rank 6 is the only task of node 3.
  const WorldInfo w = discover_world(env_of({{"SLURM_PROCID", "6"},
                                             {"SLURM_NTASKS", "7"},
                                             {"SLURM_LOCALID", "0"},
                                             {"SLURM_NODEID", "3"},
                                             {"SLURM_STEP_ID", "0"},
                                             {"SLURM_STEP_TASKS_PER_NODE", "2(x3),1"},
                                             {"RANK", "0"}}));
  EXPECT_EQ(w.source, "Slurm");
  EXPECT_EQ(w.rank, 6);
  EXPECT_EQ(w.size, 7);
  EXPECT_EQ(w.local_rank, 0);
  EXPECT_EQ(w.local_size, 1);

  const WorldInfo v = discover_world(env_of({{"SLURM_PROCID", "3"},
                                             {"SLURM_NTASKS", "7"},
                                             {"SLURM_LOCALID", "1"},
                                             {"SLURM_NODEID", "1"},
                                             {"SLURM_STEP_ID", "2"},
                                             {"SLURM_TASKS_PER_NODE", "2(x3),1"}}));
  EXPECT_EQ(v.local_size, 2);
  EXPECT_EQ(v.local_rank, 1);

  const WorldInfo u = discover_world(env_of({{"SLURM_PROCID", "1"},
                                             {"SLURM_NTASKS", "4"},
                                             {"SLURM_LOCALID", "1"},
                                             {"SLURM_STEP_ID", "0"},
                                             {"SLURM_NTASKS_PER_NODE", "2"}}));
  EXPECT_EQ(u.local_size, 2);
}

TEST(World, SbatchScriptWithoutStepIsOneProcess) {
  // The batch script itself sees SLURM_PROCID=0 and the allocation's SLURM_NTASKS.
  const WorldInfo w = discover_world(
      env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "0"}}));
  EXPECT_EQ(w.size, 1);
  EXPECT_EQ(w.source, "none");
}

TEST(World, TorchrunStyle) {
  const WorldInfo w = discover_world(
      env_of({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"}}));
  EXPECT_EQ(w.source, "torchrun");
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.size, 4);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 2);
  // Without LOCAL_WORLD_SIZE: one node.
  const WorldInfo v =
      discover_world(env_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"}}));
  EXPECT_EQ(v.local_size, 2);
}

TEST(World, BadValuesNameTheVariable) {
  EXPECT_NE(error_of({{"OMPI_COMM_WORLD_RANK", "x1"},
                      {"OMPI_COMM_WORLD_SIZE", "2"},
                      {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                      {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}})
                .find("OMPI_COMM_WORLD_RANK='x1': expected a non-negative integer"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"LOCAL_RANK", "0"}}).find("WORLD_SIZE is not"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}})
                .find("rank 4 is not below the world size 4"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "-1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}}).find("RANK='-1'"),
            std::string::npos);
  EXPECT_NE(error_of({{"SLURM_PROCID", "0"},
                      {"SLURM_NTASKS", "2"},
                      {"SLURM_LOCALID", "0"},
                      {"SLURM_STEP_ID", "0"},
                      {"SLURM_TASKS_PER_NODE", "2(y3)"}})
                .find("SLURM_TASKS_PER_NODE='2(y3)'"),
            std::string::npos);
  EXPECT_NE(
      error_of({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "3"}, {"LOCAL_WORLD_SIZE", "2"}})
          .find("local rank 3 of 2"),
      std::string::npos);
}

TEST(World, IntraOpThreads) {
  // An explicit request wins.
  EXPECT_EQ(intra_op_threads(4, 3, 16, 16), 3);
  // Unbound: the machine's cores shared by the ranks of the node.
  EXPECT_EQ(intra_op_threads(4, 0, 16, 16), 4);
  EXPECT_EQ(intra_op_threads(3, 0, 16, 16), 5);
  EXPECT_EQ(intra_op_threads(32, 0, 16, 16), 1);
  // Bound by the launcher to 2 of 16 cores: those 2 are this rank's share.
  EXPECT_EQ(intra_op_threads(4, 0, 2, 16), 2);
  // This process, as it runs now.
  EXPECT_GE(intra_op_threads(1), 1);
  EXPECT_LE(affinity_cores(), machine_cores());
}

}  // namespace
}  // namespace umbra
