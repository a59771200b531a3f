//===- BmsysMoeOps.cpp - verifier of bmsys.moe_ffn ------------------------===//
#include "dialects/bmsys/BmsysDialect.h"

using namespace mlir;
using namespace bmsys;

LogicalResult MoeFFNOp::verify() {
  auto x = cast<RankedTensorType>(getX().getType());
  if (x.getRank() != 3 || getResult().getType() != x)
    return emitOpError() << "expects x [batch, seq, hidden] and a result of x's type";
  int64_t hidden = x.getShape().back(), experts = getExperts(), topK = getTopK();
  if (experts < 1 || topK < 1 || topK > experts)
    return emitOpError() << "needs 1 <= top_k <= experts, got top_k " << topK << " of "
                         << experts;
  StringRef act = getActivation();
  if (act != "silu" && act != "gelu" && act != "gelu_tanh")
    return emitOpError() << "activation must be silu, gelu or gelu_tanh, got '" << act << "'";
  size_t expected = 2 + (getGated() ? 1 : 0) + (getBias() ? 2 : 0);
  if (getWeights().size() != expected)
    return emitOpError() << "expects " << expected << " weights (w_in" << (getGated() ? ", w_up" : "")
                         << ", w_out" << (getBias() ? ", b_in, b_out" : "") << "), got "
                         << getWeights().size();
  auto router = cast<RankedTensorType>(getRouter().getType());
  if (router.getRank() != 2 || router.getDimSize(0) != experts || router.getDimSize(1) != hidden)
    return emitOpError() << "router must be [" << experts << ", " << hidden << "], got " << router;
  auto win = cast<RankedTensorType>(getWeights()[0].getType());
  if (win.getRank() != 2 || win.getDimSize(1) != hidden)
    return emitOpError() << "w_in must be [neurons, " << hidden << "], got " << win;
  int64_t n = win.getDimSize(0);
  if (n % experts)
    return emitOpError() << n << " neurons do not split into " << experts << " equal experts";
  size_t matrices = getGated() ? 3 : 2;
  for (size_t i = 1; i < matrices; ++i)
    if (getWeights()[i].getType() != win)
      return emitOpError() << "weight " << i << " must have w_in's type " << win;
  if (getBias()) {
    auto bin = cast<RankedTensorType>(getWeights()[matrices].getType());
    auto bout = cast<RankedTensorType>(getWeights()[matrices + 1].getType());
    if (bin.getRank() != 1 || bin.getDimSize(0) != n || bout.getRank() != 1 ||
        bout.getDimSize(0) != hidden)
      return emitOpError() << "b_in must be [" << n << "] and b_out [" << hidden << "]";
  }
  return success();
}
