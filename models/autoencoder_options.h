// Options of the stage-1 autoencoder (config section `autoencoder.`; DESIGN.md §6). Names follow
// Stable Diffusion's AutoencoderKL config (ch -> channels, ch_mult -> channel_mult, num_res_blocks,
// z_channels). autoencoder.batch_size and autoencoder.max_steps belong to the trainer's options.
#pragma once

#include <cstdint>
#include <vector>

#include "core/options.h"

namespace umbra {

struct AutoencoderOptions {
  int64_t in_channels = 1;
  int64_t image_size = 28;
  int64_t sample_size = 32;
  int64_t channels = 64;
  std::vector<int64_t> channel_mult = {1, 2, 2};
  int64_t num_res_blocks = 1;
  int64_t z_channels = 4;
  int64_t norm_num_groups = 32;
  int64_t num_heads = 1;
  double dropout = 0.0;
  double beta = 1.0;
  double logvar_init = 0.0;

  template <class V>
  void visit(V& v) {
    v("in_channels", in_channels, "Image channels (1 for Fashion-MNIST)", AtLeast{1});
    v("image_size", image_size, "Height = width of the data images in pixels", AtLeast{1});
    v("sample_size", sample_size,
      "Height = width the network works at: images are padded symmetrically with -1 (black) "
      "from image_size to sample_size and reconstructions cropped back; must be a multiple of "
      "2^(len(channel_mult)-1). 32 gives 8x8 latents for 28x28 images, 28 gives 7x7",
      AtLeast{1});
    v("channels", channels, "Base channel count of the first level (SD: ch)", AtLeast{1});
    v("channel_mult", channel_mult,
      "Channel multiplier per resolution level; one x2 downsampling between levels, so the "
      "downsampling factor is f = 2^(levels-1) (3 levels: f = 4)");
    v("num_res_blocks", num_res_blocks, "ResBlocks per encoder level (decoder: one more)",
      AtLeast{1});
    v("z_channels", z_channels, "Latent channels", AtLeast{1});
    v("norm_num_groups", norm_num_groups, "GroupNorm groups (must divide every channel count)",
      AtLeast{1});
    v("num_heads", num_heads, "Attention heads of the mid-block self-attention", AtLeast{1});
    v("dropout", dropout, "Dropout inside ResBlocks", InRange{0.0, 1.0});
    v("beta", beta, "Weight of the KL term in the training loss (beta-VAE; 1 = the true ELBO)",
      AtLeast{0.0});
    v("logvar_init", logvar_init,
      "Initial value of the learned scalar log-variance of the Gaussian decoder likelihood");
  }

  // Checks the cross-field constraints; throws umbra::Error naming the autoencoder.* key.
  void validate() const;
  int64_t downsample_factor() const { return int64_t{1} << (channel_mult.size() - 1); }
  int64_t latent_size() const { return sample_size / downsample_factor(); }
};

}  // namespace umbra
