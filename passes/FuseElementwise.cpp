//===- FuseElementwise.cpp - bmsys-fuse-elementwise -----------------------===//
//
// Rewrites memory-bound op chains into the single-pass ops of BmsysFusedOps.td
// (see the pass description in Passes.td). Each pattern is one sweep over a
// function: candidates are collected first, then each is re-checked and
// rewritten, so that an earlier rewrite can only make a later candidate fail
// its checks, never leave it dangling. Placement uses dominance: a fused op goes
// where all its operands are defined and before every use of what it replaces.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Dominance.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSFUSEELEMENTWISE
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {

constexpr llvm::StringLiteral kRecompute = "bmsys.recompute";

/// The other operand of a binary op, or null when `v` is not one of them.
Value otherOperand(Operation *op, Value v) {
  if (op->getOperand(0) == v)
    return op->getOperand(1);
  if (op->getOperand(1) == v)
    return op->getOperand(0);
  return {};
}

/// The earliest of `ops` (all in one block).
Operation *earliest(ArrayRef<Operation *> ops) {
  Operation *first = ops.front();
  for (Operation *op : ops.drop_front())
    if (op->isBeforeInBlock(first))
      first = op;
  return first;
}

class Fuser {
public:
  Fuser(func::FuncOp func) : func(func), dom(func), b(func.getContext()) {}

  // What was fused (lossCasts: casts removed).
  int64_t swiglu = 0, swigluGrad = 0, addRmsNorm = 0, rmsNormGradAdd = 0, lossCasts = 0,
          ropeAttention = 0;

  /// cross_entropy(cast(x)) -> cross_entropy(x); cast(cross_entropy_grad(cast(x)))
  /// -> cross_entropy_grad(x) of x's type.
  void foldLossCasts() {
    SmallVector<Operation *> cands;
    func.walk([&](Operation *op) {
      if (isa<CrossEntropyOp, CrossEntropyGradOp>(op))
        cands.push_back(op);
    });
    for (Operation *op : cands) {
      auto castOp = op->getOperand(0).getDefiningOp<CastOp>();
      if (!castOp)
        continue;
      Value x = castOp.getX();
      auto xType = cast<RankedTensorType>(x.getType());
      if (isa<CrossEntropyOp>(op)) {
        op->setOperand(0, x);
      } else {
        Value grad = op->getResult(0);
        if (!grad.hasOneUse())
          continue;
        auto back = dyn_cast<CastOp>(*grad.getUsers().begin());
        if (!back || back.getType() != xType)
          continue;
        b.setInsertionPoint(op);
        Operation *fused = b.clone(*op);
        fused->setOperand(0, x);
        fused->getResult(0).setType(xType);
        back.getResult().replaceAllUsesWith(fused->getResult(0));
        back.erase();
        op->erase();
        ++lossCasts;
      }
      if (castOp->use_empty()) {
        castOp.erase();
        ++lossCasts;
      }
    }
  }

  /// silu_grad(g, mul(dy, u)) and mul(dy, silu(g)) -> swiglu_grad(g, u, dy).
  void fuseSwiGluGrad() {
    SmallVector<SiluGradOp> cands;
    func.walk([&](SiluGradOp op) { cands.push_back(op); });
    for (SiluGradOp grad : cands) {
      Value g = grad.getX();
      auto dsilu = grad.getDy().getDefiningOp<MulOp>();
      if (!dsilu || !dsilu->hasOneUse() || dsilu->getBlock() != grad->getBlock())
        continue;
      // The mul(dy, silu(g)) beside it: a silu of g and a mul of it sharing an
      // operand with dsilu.
      MulOp dupMul;
      Value dy, up;
      Operation *at = nullptr;
      for (Operation *user : g.getUsers()) {
        auto silu = dyn_cast<SiluOp>(user);
        if (!silu)
          continue;
        for (Operation *su : silu->getUsers()) {
          auto m = dyn_cast<MulOp>(su);
          if (!m || m == dsilu || m->getBlock() != grad->getBlock())
            continue;
          Value d = otherOperand(m, silu);
          Value u = d ? otherOperand(dsilu, d) : Value();
          if (!u || d == silu.getResult())
            continue;
          // The forward mul(silu(g), u) also matches, with dy and u swapped (the
          // result would be the same values: dgate is symmetric in them). In a
          // real backward dy depends on that mul, so it is not placeable; where
          // both are, the later mul (the backward's) is taken.
          Operation *first = earliest({dsilu, m, grad});
          if (!placeable({g, u, d}, first) || (dupMul && m->isBeforeInBlock(dupMul)))
            continue;
          dupMul = m;
          dy = d;
          up = u;
          at = first;
        }
      }
      if (!dupMul)
        continue;
      b.setInsertionPoint(at);
      auto fused = SwiGluGradOp::create(b, grad.getLoc(), grad.getType(), dupMul.getType(), g, up, dy);
      copyRecompute(grad, fused);
      grad.getResult().replaceAllUsesWith(fused.getDgate());
      dupMul.getResult().replaceAllUsesWith(fused.getDup());
      grad.erase();
      dsilu.erase();
      dupMul.erase();
      ++swigluGrad;
    }
  }

  /// mul(silu(g), u) -> swiglu(g, u) where the silu has no other use.
  void fuseSwiGlu() {
    SmallVector<MulOp> cands;
    func.walk([&](MulOp op) { cands.push_back(op); });
    for (MulOp mul : cands) {
      SiluOp silu;
      Value up;
      for (Value v : {mul.getLhs(), mul.getRhs()}) {
        auto s = v.getDefiningOp<SiluOp>();
        if (s && s->hasOneUse() && mul.getLhs() != mul.getRhs()) {
          silu = s;
          up = otherOperand(mul, v);
          break;
        }
      }
      if (!silu)
        continue;
      b.setInsertionPoint(mul);
      auto fused = SwiGluOp::create(b, mul.getLoc(), mul.getType(), silu.getX(), up);
      copyRecompute(mul, fused);
      mul.getResult().replaceAllUsesWith(fused.getResult());
      mul.erase();
      silu.erase();
      ++swiglu;
    }
  }

  /// add(r, rms_norm_grad(x, gamma, dy).dx) -> rms_norm_grad_add(x, gamma, dy, r).
  void fuseRmsNormGradAdd() {
    SmallVector<RMSNormGradOp> cands;
    func.walk([&](RMSNormGradOp op) { cands.push_back(op); });
    for (RMSNormGradOp grad : cands) {
      Value dx = grad.getDx();
      if (!dx.hasOneUse())
        continue;
      auto add = dyn_cast<AddOp>(*dx.getUsers().begin());
      if (!add || add->getBlock() != grad->getBlock() || add.getLhs() == add.getRhs())
        continue;
      Value residual = otherOperand(add, dx);
      // At the norm gradient if the residual is ready there (its dgamma's uses
      // are then after it), else at the add if dgamma is first used after it.
      Operation *at = grad;
      if (!placeable({residual}, grad)) {
        at = add;
        bool ok = true;
        for (Operation *user : grad.getDgamma().getUsers())
          ok &= dom.properlyDominates(add.getOperation(), user);
        if (!ok)
          continue;
      }
      b.setInsertionPoint(at);
      auto fused = RmsNormGradAddOp::create(b, grad.getLoc(), add.getType(), grad.getDgamma().getType(),
                                            grad.getX(), grad.getGamma(), grad.getDy(), residual,
                                            grad.getEpsAttr());
      copyRecompute(grad, fused);
      add.getResult().replaceAllUsesWith(fused.getDx());
      grad.getDgamma().replaceAllUsesWith(fused.getDgamma());
      add.erase();
      grad.erase();
      ++rmsNormGradAdd;
    }
  }

  /// rms_norm(add(a, b), gamma) -> add_rms_norm(a, b, gamma); the sum replaces
  /// the add's other uses.
  void fuseAddRmsNorm() {
    SmallVector<RMSNormOp> cands;
    func.walk([&](RMSNormOp op) { cands.push_back(op); });
    for (RMSNormOp norm : cands) {
      auto add = norm.getX().getDefiningOp<AddOp>();
      if (!add || add->getBlock() != norm->getBlock() ||
          add.getType() != norm.getType())
        continue;
      // At the add if gamma is ready there, else at the norm if every other use
      // of the sum comes after it.
      Operation *at = add;
      if (!placeable({norm.getGamma()}, add)) {
        at = norm;
        bool ok = true;
        for (Operation *user : add->getUsers())
          ok &= user == norm || dom.properlyDominates(norm.getOperation(), user);
        if (!ok)
          continue;
      }
      b.setInsertionPoint(at);
      auto fused = AddRmsNormOp::create(b, norm.getLoc(), add.getType(), norm.getType(), add.getLhs(),
                                        add.getRhs(), norm.getGamma(), norm.getEpsAttr());
      copyRecompute(norm, fused);
      norm.getResult().replaceAllUsesWith(fused.getY());
      add.getResult().replaceAllUsesWith(fused.getSum());
      norm.erase();
      add.erase();
      ++addRmsNorm;
    }
  }

  /// attention(rope(xq, pos), rope(xk, pos), v) -> rope_attention(xq, xk, v, pos) where
  /// both ropes rotate by the same positions and theta, in heads of the attention's
  /// head_dim, and the attention is the one use of each rotated tensor (in train_step
  /// attention_grad reads them too: they stay).
  void fuseRopeAttention() {
    SmallVector<AttentionOp> cands;
    func.walk([&](AttentionOp op) { cands.push_back(op); });
    for (AttentionOp att : cands) {
      auto rq = att.getQ().getDefiningOp<RopeOp>(), rk = att.getK().getDefiningOp<RopeOp>();
      if (!rq || !rk || rq == rk || !rq->hasOneUse() || !rk->hasOneUse())
        continue;
      Value pos = rq.getPositions();
      if (rk.getPositions() != pos || rq.getTheta() != rk.getTheta() ||
          rq.getHeadDim() != att.getHeadDim() || rk.getHeadDim() != att.getHeadDim())
        continue;
      // At the attention: the ropes' operands are defined before the ropes, which
      // come before it (checked all the same, as every pattern here does).
      if (!placeable({rq.getX(), rk.getX(), att.getV(), pos}, att))
        continue;
      b.setInsertionPoint(att);
      auto fused = RopeAttentionOp::create(b, att.getLoc(), att.getType(), rq.getX(), rk.getX(), att.getV(),
                                           pos, att.getNumHeadsAttr(), att.getNumKvHeadsAttr(),
                                           att.getHeadDimAttr(), att.getScaleAttr(), att.getCausalAttr(),
                                           rq.getThetaAttr(), att.getCacheAttr());
      copyRecompute(att, fused);
      att.getResult().replaceAllUsesWith(fused.getResult());
      att.erase();
      rq.erase();
      rk.erase();
      ++ropeAttention;
    }
  }

private:
  /// Whether every value is defined before `op` (dominates it).
  bool placeable(ArrayRef<Value> values, Operation *op) {
    for (Value v : values)
      if (!dom.properlyDominates(v, op))
        return false;
    return true;
  }

  /// A fused op of a recomputed (checkpointed) chain keeps the marker.
  static void copyRecompute(Operation *from, Operation *to) {
    if (Attribute a = from->getAttr(kRecompute))
      to->setAttr(kRecompute, a);
  }

  func::FuncOp func;
  DominanceInfo dom;
  OpBuilder b;
};

struct FuseElementwise : bmsys::impl::BmsysFuseElementwiseBase<FuseElementwise> {
  using Base::Base;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      Fuser f(func);
      if (lossCasts)
        f.foldLossCasts();
      if (swiglu) {
        // The backward first: it needs the silu the forward fusion removes.
        f.fuseSwiGluGrad();
        f.fuseSwiGlu();
      }
      if (residualNorm) {
        f.fuseRmsNormGradAdd();
        f.fuseAddRmsNorm();
      }
      if (ropeAttention)
        f.fuseRopeAttention();
      numSwiGlu += f.swiglu;
      numSwiGluGrad += f.swigluGrad;
      numAddRmsNorm += f.addRmsNorm;
      numRmsNormGradAdd += f.rmsNormGradAdd;
      numLossCasts += f.lossCasts;
      numRopeAttention += f.ropeAttention;
    }
  }
};

} // namespace
