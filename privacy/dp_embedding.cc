#include "privacy/dp_embedding.h"

#include "core/check.h"

namespace umbra {

DPEmbeddingImpl::DPEmbeddingImpl(const DPEmbeddingOptions& options_) : options(options_) {
  reset();
}

void DPEmbeddingImpl::reset() {
  UMBRA_CHECK(options.num_embeddings() > 0 && options.embedding_dim() > 0,
              "DPEmbedding: expected positive num_embeddings/embedding_dim, got ",
              options.num_embeddings(), "/", options.embedding_dim());
  weight = register_parameter("weight",
                              torch::empty({options.num_embeddings(), options.embedding_dim()}));
  reset_parameters();
}

void DPEmbeddingImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(weight);
}

void DPEmbeddingImpl::pretty_print(std::ostream& stream) const {
  stream << "umbra::DPEmbedding(num_embeddings=" << options.num_embeddings()
         << ", embedding_dim=" << options.embedding_dim() << ")";
}

torch::Tensor DPEmbeddingImpl::forward(const torch::Tensor& indices) {
  UMBRA_CHECK(indices.scalar_type() == torch::kLong || indices.scalar_type() == torch::kInt,
              "DPEmbedding: expected int64/int32 indices, got ", indices.scalar_type());
  if (indices.numel() > 0) {
    const int64_t lo = indices.min().item<int64_t>();
    const int64_t hi = indices.max().item<int64_t>();
    UMBRA_CHECK(lo >= 0 && hi < options.num_embeddings(), "DPEmbedding: index out of range [0, ",
                options.num_embeddings(), "): got values in [", lo, ", ", hi, "]");
  }
  return capture(indices, torch::embedding(param_for_forward(weight), indices));
}

}  // namespace umbra
