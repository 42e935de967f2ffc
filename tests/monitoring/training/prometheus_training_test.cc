// The acceptance check of DESIGN.md §10 end to end: a REAL Prometheus (Debian `prometheus`,
// loopback, temporary TSDB) discovers a 2-rank `mpirun -np 2 umbra train` through the file_sd
// target file rank 0 writes, scrapes both ranks once a second while they train, and answers
// through its HTTP API: umbra_steps_total has one series per rank and it increases. Each rank's
// own /metrics, scraped while it trains, passes `promtool check metrics`.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "monitoring/file_sd.h"
#include "tests/monitoring/training_run.h"

namespace umbra {
namespace {

constexpr int kSteps = 360;  // several 1 s scrapes while it trains, even on an idle machine

// {rank label -> address} from the file_sd target file (empty until rank 0 wrote it).
std::map<std::string, std::string> targets_by_rank(const std::string& path) {
  std::map<std::string, std::string> out;
  if (!std::filesystem::exists(path)) return out;
  try {
    const nlohmann::json groups = nlohmann::json::parse(test::read_text_file(path));
    for (const auto& g : groups) out[g["labels"]["rank"]] = g["targets"][0];
  } catch (const nlohmann::json::exception&) {  // never half a file (atomic rename), but be safe
  }
  return out;
}

TEST(PrometheusTraining, TwoRankRunIsScrapedThroughFileSd) {
  for (const char* tool : {test::kPrometheusBinary, test::kPromtoolBinary})
    if (!test::executable_exists(tool)) GTEST_SKIP() << tool << " not installed";
  if (!std::filesystem::exists(test::kFashionMnist)) GTEST_SKIP() << test::kFashionMnist;
  test::TempDir dir;
  std::string why;
  const std::string data = test::pack_fashion_mnist_subset(dir.path(), 512, 64, &why);
  ASSERT_FALSE(data.empty()) << why;

  const std::string runs = dir.path() + "/runs";
  const std::string run = "prom2";
  const std::string target_file = file_sd_path(runs, run);
  std::filesystem::create_directories(std::filesystem::path(target_file).parent_path());
  std::filesystem::create_directories(dir.path() + "/prometheus");
  test::PrometheusServer prom(dir.path() + "/prometheus", target_file, 1.0);
  ASSERT_TRUE(prom.wait_ready(30)) << prom.log_tail();

  // linger_s keeps both endpoints up for two more scrapes after the last step, so Prometheus
  // holds the final count too.
  const std::string command =
      "timeout -k 5 100 " +
      test::tiny_train_command(2, data, runs, run,
                               "stage=autoencoder autoencoder.max_steps=" + std::to_string(kSteps) +
                                   " autoencoder.log_every=20 checkpoint.every_steps=1000"
                                   " monitoring.enabled=true monitoring.port_base=0"
                                   " monitoring.linger_s=2.5");
  std::map<std::string, std::string> last_scrape;        // rank -> /metrics text
  std::map<std::string, std::set<double>> seen_by_prom;  // rank -> values Prometheus returned
  {
    test::BackgroundCommand training(command);
    while (!training.done()) {
      for (const auto& [rank, address] : targets_by_rank(target_file)) {
        const test::HttpResponse r =
            test::http_get("127.0.0.1", test::port_of(address), "/metrics", 2.0);
        if (r.status == 200 && r.body.find("umbra_steps_total{") != std::string::npos)
          last_scrape[rank] = r.body;
      }
      try {
        const nlohmann::json result = prom.query("umbra_steps_total{run=\"" + run + "\"}");
        for (const auto& [rank, value] : test::values_by_label(result, "rank"))
          seen_by_prom[rank].insert(value);
      } catch (const std::exception&) {  // a query racing a restart of nothing: keep polling
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
    }
    ASSERT_EQ(training.result().exit_code, 0) << command << "\n" << training.result().output;
  }

  // The whole history, from Prometheus' TSDB: one series per rank, increasing to kSteps.
  const nlohmann::json history = prom.query("umbra_steps_total{run=\"" + run + "\"}[5m]");
  std::map<std::string, std::vector<double>> values;
  for (const auto& series : history) {
    EXPECT_EQ(series["metric"].value("stage", ""), "autoencoder") << series.dump();
    EXPECT_EQ(series["metric"].value("job", ""), "umbra") << series.dump();
    std::vector<double>& v = values[series["metric"].value("rank", "")];
    EXPECT_TRUE(v.empty()) << "two series for one rank: " << history.dump();
    for (const auto& sample : series["values"])
      v.push_back(std::stod(sample[1].get<std::string>()));
  }
  ASSERT_EQ(values.size(), 2u) << history.dump() << "\ntargets: " << prom.active_targets().dump()
                               << "\n"
                               << prom.log_tail();
  for (const auto& [rank, v] : values) {
    SCOPED_TRACE("rank " + rank);
    ASSERT_TRUE(rank == "0" || rank == "1");
    ASSERT_GE(v.size(), 3u) << "scraped fewer than 3 times";
    for (size_t i = 1; i < v.size(); ++i) EXPECT_LE(v[i - 1], v[i]) << "a counter went down";
    EXPECT_LT(v.front(), v.back()) << "umbra_steps_total did not increase";
    EXPECT_EQ(v.back(), kSteps) << "the final count was not scraped";
    EXPECT_GE(seen_by_prom[rank].size(), 2u)
        << "instant queries during training saw a single value";
    std::printf("rank %s: %zu samples in Prometheus, %g -> %g steps\n", rank.c_str(), v.size(),
                v.front(), v.back());
  }

  // Each rank's own exposition, scraped while it trained, is clean by promtool's rules.
  ASSERT_EQ(last_scrape.size(), 2u) << "could not scrape both ranks directly";
  for (const auto& [rank, text] : last_scrape) {
    SCOPED_TRACE("rank " + rank);
    EXPECT_NE(text.find("umbra_step_duration_seconds_bucket{"), std::string::npos);
    EXPECT_NE(text.find("umbra_build_info{"), std::string::npos);
    const test::CommandResult lint = test::promtool_check_metrics(text);
    EXPECT_EQ(lint.exit_code, 0) << lint.output;
    EXPECT_EQ(lint.output, "") << "promtool findings";
  }
}

}  // namespace
}  // namespace umbra
