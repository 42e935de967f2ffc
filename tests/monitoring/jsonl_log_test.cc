// metrics.jsonl: round trip, Python's json module reading the same file, resumed runs and a run
// that died mid-line.
#include "monitoring/jsonl_log.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "tests/monitoring/prometheus_server.h"

namespace umbra {
namespace {

StepRecord record(const std::string& stage, int64_t step, double loss,
                  std::optional<double> epsilon = std::nullopt) {
  StepRecord r;
  r.stage = stage;
  r.step = step;
  r.time = 1732470000.0 + step * 0.5;
  r.loss = loss;
  r.lr = 2e-4;
  r.images_per_s = 1500.0 + step;
  r.epsilon = epsilon;
  return r;
}

void expect_same(const StepRecord& a, const StepRecord& b) {
  EXPECT_EQ(a.stage, b.stage);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.time, b.time);
  if (std::isnan(a.loss)) {
    EXPECT_TRUE(std::isnan(b.loss));
  } else {
    EXPECT_EQ(a.loss, b.loss);
  }
  EXPECT_EQ(a.lr, b.lr);
  EXPECT_EQ(a.images_per_s, b.images_per_s);
  EXPECT_EQ(a.epsilon, b.epsilon);
  EXPECT_EQ(a.extra, b.extra);
}

TEST(JsonlLog, RoundTrip) {
  test::TempDir dir;
  const std::string path = jsonl_log_path(dir.path());
  EXPECT_EQ(path, dir.path() + "/metrics.jsonl");
  std::vector<StepRecord> written = {
      record("autoencoder", 10, 0.9, 0.5), record("autoencoder", 20, 0.1 + 0.2, 0.75),
      record("prior", 10, std::nan(""), 0.8), record("prior", 20, 1e-12)};
  written[1].extra = {{"grad_norm", 1.25}, {"clip_fraction", 0.5}};
  {
    JsonlLog log(path);
    for (const StepRecord& r : written) log.write(r);
    // Flushed per record: visible to a reader while the log is still open.
    EXPECT_EQ(read_jsonl_log(path).size(), written.size());
  }
  const std::vector<StepRecord> read = read_jsonl_log(path);
  ASSERT_EQ(read.size(), written.size());
  for (size_t i = 0; i < read.size(); ++i) expect_same(written[i], read[i]);
}

// Python's json module is the reference reader: the file is plain JSONL with the documented keys.
TEST(JsonlLog, PythonReadsTheSameFigures) {
  test::TempDir dir;
  const std::string path = dir.path() + "/metrics.jsonl";
  StepRecord r = record("prior", 7, 0.0625, 1.5);
  r.extra = {{"grad_norm", 3.0}};
  {
    JsonlLog log(path);
    log.write(r);
    log.write(record("prior", 8, std::nan("")));
  }
  const std::string script =
      "import json,sys\n"
      "for line in open(sys.argv[1]):\n"
      "    d = json.loads(line)\n"
      "    print(d['stage'], d['step'], repr(d['time']), repr(d['loss']), repr(d['lr']),\n"
      "          repr(d['images_per_s']), repr(d.get('epsilon')), repr(d.get('grad_norm')),\n"
      "          ','.join(d.keys()))\n";
  test::write_text_file(dir.path() + "/read.py", script);
  const test::CommandResult py =
      test::run_command(std::string(UMBRA_PYTHON) + " " + dir.path() + "/read.py " + path);
  ASSERT_EQ(py.exit_code, 0) << py.output;
  EXPECT_EQ(py.output,
            "prior 7 1732470003.5 0.0625 0.0002 1507.0 1.5 3.0 "
            "stage,step,time,loss,lr,images_per_s,epsilon,grad_norm\n"
            "prior 8 1732470004.0 None 0.0002 1508.0 None None "
            "stage,step,time,loss,lr,images_per_s\n");
}

TEST(JsonlLog, ResumedRunSupersedesStepsLoggedAfterTheCheckpoint) {
  test::TempDir dir;
  const std::string path = dir.path() + "/metrics.jsonl";
  {
    JsonlLog log(path);
    for (int64_t s : {100, 200}) log.write(record("autoencoder", s, 1.0));
    for (int64_t s : {100, 200, 300}) log.write(record("prior", s, 1.0));
  }
  {
    JsonlLog log(path);  // resumed from the prior's step-200 checkpoint: appends, logs 200 again
    for (int64_t s : {200, 300, 400}) log.write(record("prior", s, 2.0));
  }
  const std::vector<StepRecord> read = read_jsonl_log(path);
  std::vector<std::pair<std::string, int64_t>> steps;
  for (const StepRecord& r : read) steps.emplace_back(r.stage, r.step);
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"autoencoder", 100}, {"autoencoder", 200}, {"prior", 100},
      {"prior", 200},       {"prior", 300},       {"prior", 400}};
  EXPECT_EQ(steps, expected);
  EXPECT_EQ(read[2].loss, 1.0);  // before the checkpoint: kept
  EXPECT_EQ(read[3].loss, 2.0);  // after it: the resumed run's records
}

TEST(JsonlLog, TruncatedLastLineIsSkippedOtherDamageIsAnError) {
  test::TempDir dir;
  const std::string path = dir.path() + "/metrics.jsonl";
  const std::string good = to_json_line(record("prior", 1, 0.5)) + "\n";
  test::write_text_file(path, good + good.substr(0, 20));  // died while writing step 2
  EXPECT_EQ(read_jsonl_log(path).size(), 1u);

  test::write_text_file(path, good + "{\"stage\": \"prior\"\n" + good);
  try {
    read_jsonl_log(path);
    FAIL() << "expected umbra::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":2"), std::string::npos) << e.what();
  }
  test::write_text_file(path, "{\"stage\": \"prior\", \"step\": 1, \"loss\": \"high\"}\n");
  EXPECT_THROW(read_jsonl_log(path), Error);
  EXPECT_THROW(read_jsonl_log(dir.path() + "/missing.jsonl"), Error);
  EXPECT_THROW(JsonlLog(dir.path() + "/no/such/dir/metrics.jsonl"), Error);
}

}  // namespace
}  // namespace umbra
