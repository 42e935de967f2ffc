// `umbra sample --run DIR [--n N] [--class K] [--guidance W] [--steps S] --out FILE.png|FILE.h5`
#include <filesystem>

#include "core/check.h"
#include "core/log.h"
#include "core/png.h"
#include "data/shard.h"
#include "launch/verb.h"
#include "models/elbo.h"
#include "trainer/trained_run.h"

namespace fs = std::filesystem;

namespace umbra {
namespace {

struct SampleArgs {
  std::string run, out;
  int64_t n = 100;
  int64_t cls = -1;
  double guidance = -1;
  int64_t steps = -1;
  std::string sampler;
  double eta = -1;
  uint64_t seed = 0;
};

void run_sample(const SampleArgs& a) {
  const bool png = a.out.size() > 4 && a.out.substr(a.out.size() - 4) == ".png";
  const bool h5 = a.out.size() > 3 && a.out.substr(a.out.size() - 3) == ".h5";
  UMBRA_USAGE_CHECK(png || h5, "--out '", a.out, "': expected a .png or .h5 file name");
  UMBRA_USAGE_CHECK(a.n >= 1, "--n ", a.n, ": expected at least 1 image");
  TrainedRun run = load_trained_run(a.run);
  SamplerOptions options = run.cfg.prior.sampling;
  if (a.guidance >= 0) options.guidance_scale = a.guidance;
  if (a.steps > 0) options.num_inference_steps = a.steps;
  if (!a.sampler.empty()) options.sampler = a.sampler;
  if (a.eta >= 0) options.eta = a.eta;
  const int64_t classes = run.unet->num_classes();
  UMBRA_USAGE_CHECK(a.cls < classes, "--class ", a.cls, ": the model has ", classes,
                    " classes (0..", classes - 1, ")");
  torch::Tensor labels;
  if (classes > 0) {
    labels = a.cls >= 0 ? torch::full({a.n}, a.cls, torch::kInt64)
                        : std::get<0>(torch::arange(a.n, torch::kInt64).remainder(classes).sort());
  }
  spdlog::info("sampling {} image(s) with {} ({} steps, guidance {})", a.n, options.sampler,
               options.num_inference_steps, options.guidance_scale);
  const torch::Tensor images = generate_images(run, a.n, labels, options, a.seed);
  if (!fs::path(a.out).parent_path().empty()) fs::create_directories(fs::path(a.out).parent_path());
  if (png) {
    const int64_t nrow = classes > 0 && a.cls < 0
                             ? std::max<int64_t>(1, a.n / classes)
                             : static_cast<int64_t>(std::ceil(std::sqrt(double(a.n))));
    save_image_grid(a.out, images, nrow);
  } else {
    DatasetMeta meta;
    meta.source = "umbra sample --run " + a.run;
    for (int64_t c = 0; c < std::max<int64_t>(classes, 1); ++c) {
      meta.class_names.push_back(classes > 0 ? "class_" + std::to_string(c) : "unconditional");
    }
    meta.channels = images.size(1);
    meta.height = images.size(2);
    meta.width = images.size(3);
    const torch::Tensor pixels = model_to_pixels(images).contiguous();
    const torch::Tensor l = classes > 0 ? labels.contiguous() : torch::zeros({a.n}, torch::kInt64);
    const torch::Tensor ids = torch::arange(a.n, torch::kInt64);
    if (fs::exists(a.out)) fs::remove(a.out);
    write_shard(a.out, meta, pixels.data_ptr<uint8_t>(), l.data_ptr<int64_t>(),
                ids.data_ptr<int64_t>(), a.n);
  }
  std::printf("%s\n", a.out.c_str());
}

void add_sample(CLI::App& app) {
  auto a = std::make_shared<SampleArgs>();
  auto* cmd = app.add_subcommand("sample", "Generate images from a trained run");
  cmd->add_option("--run", a->run, "Run directory")->required();
  cmd->add_option("--out", a->out, "Output: FILE.png (grid) or FILE.h5 (shard format)")->required();
  cmd->add_option("--n", a->n, "Number of images (default 100)");
  cmd->add_option("--class", a->cls, "Class index (default: every class in turn)");
  cmd->add_option("--guidance", a->guidance, "Classifier-free guidance scale w");
  cmd->add_option("--steps", a->steps,
                  "Denoising steps, DDPM or DDIM (default: the run's prior.sampling)");
  cmd->add_option("--sampler", a->sampler, "ddim or ddpm")->check(CLI::IsMember({"ddim", "ddpm"}));
  cmd->add_option("--eta", a->eta, "DDIM eta in [0, 1]")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", a->seed, "Sampling seed (default 0)");
  cmd->callback([a] { run_sample(*a); });
}
UMBRA_REGISTER_VERB(add_sample, 40);

}  // namespace
}  // namespace umbra
