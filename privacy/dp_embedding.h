// DPEmbedding: a lookup table, the DP-aware twin of torch::nn::Embedding (weight ~ N(0, 1)).
//
// Shapes: indices int64 [B, *] with values in [0, num_embeddings) -> output [B, *, embedding_dim];
// weight [num_embeddings, embedding_dim].
// DP mode (privacy/dp_module.h): activation() = the indices [B, *], grad_output() = dL/dy
// [B, *, embedding_dim]; the gradient of sample i adds row j of B_i to weight row indices_i[j].
#pragma once

#include <torch/torch.h>

#include "privacy/dp_module.h"

namespace umbra {

struct DPEmbeddingOptions {
  DPEmbeddingOptions(int64_t num_embeddings, int64_t embedding_dim)
      : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {}
  TORCH_ARG(int64_t, num_embeddings);
  TORCH_ARG(int64_t, embedding_dim);
};

class DPEmbeddingImpl : public torch::nn::Cloneable<DPEmbeddingImpl>, public DPModule {
 public:
  DPEmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim)
      : DPEmbeddingImpl(DPEmbeddingOptions(num_embeddings, embedding_dim)) {}
  explicit DPEmbeddingImpl(const DPEmbeddingOptions& options);

  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  const char* dp_kind() const override { return "Embedding"; }

  // Throws umbra::Error for a non-integer index tensor or an index out of range.
  torch::Tensor forward(const torch::Tensor& indices);

  DPEmbeddingOptions options;
  torch::Tensor weight;
};
TORCH_MODULE(DPEmbedding);

}  // namespace umbra
