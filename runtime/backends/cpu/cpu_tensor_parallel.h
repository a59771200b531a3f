// CPU kernels of tensor parallelism (docs/kernels.md "Tensor parallelism"): the
// vocab-parallel embedding and cross-entropy, which communicate over the
// tensor-parallel group. Rank r of R holds vocabulary rows (embedding) or logit
// columns (cross-entropy) [r*V, (r+1)*V) of a vocabulary of R*V tokens.
#pragma once

#include <cstdint>

namespace bmsys::rt {
class Communicator;
}

namespace bmsys::rt::cpu {

// y[i] = table[ids[i] - start] for ids in this rank's rows, zero otherwise.
// Throws naming the first id outside [0, V*R).
void embedding_vocab_parallel(float* y, const int64_t* ids, int64_t n, const float* table, int64_t V,
                              int64_t H, int rank, int R);
// The rows of dtable (this rank's) receive dy of the tokens in them.
void embedding_grad_vocab_parallel(float* dtable, const int64_t* ids, int64_t n, const float* dy, int64_t V,
                                   int64_t H, int rank, int R);
// The mean cross-entropy over the whole vocabulary: the row maxima are
// all-reduced (max), then the sums of exponentials and the labels' logits (sum).
// Every rank returns the same loss.
double cross_entropy_vocab_parallel(const float* logits, const int64_t* labels, int64_t B, int64_t S, int64_t V,
                                    bool shift, int rank, Communicator& tp);
// dlogits for this rank's columns: (softmax over the whole vocabulary - onehot) / count * scale.
void cross_entropy_grad_vocab_parallel(float* dlogits, const float* logits, const int64_t* labels, int64_t B,
                                       int64_t S, int64_t V, bool shift, double scale, int rank, Communicator& tp);

}  // namespace bmsys::rt::cpu
