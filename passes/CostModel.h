//===- CostModel.h - predicted step time of a planned module --------------===//
//
// The step-time model of bmsys-fit (docs/autofit.md, "Cost model"). Each
// kernel launch of a bmsys_rt function costs
//
//   GEMMs (linear*, linear_int8)   launch latency + max(flops / gemm rate(flops, dtype),
//                                                       bytes / memory bandwidth)
//   attention, attention_grad      launch latency + max(flops / attention rate, bytes / bw)
//   rope_attention                 attention's, plus the bytes / bw of the two ropes it
//                                  replaces (one launch latency for all three)
//   collectives (ring)             collective latency + n · f / bus bandwidth, with
//                                  f = 2(p−1)/p (all_reduce), (p−1)/p (reduce_scatter,
//                                  all_gather, sync_param), n the bytes of the whole tensor
//   host copies (h2d/d2h kernels)  launch latency + bytes / PCIe bandwidth
//   everything else                launch latency + bytes / memory bandwidth
//
// with `bytes` all operand and result bytes at the call's B and S. The step
// is then a list schedule over three streams (compute, communication, host
// copies): each launch starts when its stream is free and its inputs are
// ready; with `overlap` off every launch runs on the compute stream (what a
// runtime that executes instructions in order does). The step time is when
// the last stream finishes.
//
// The rates come from a calibration file (`bmsys-run calibrate -o FILE`, or
// the checked-in default for the H200) in the format of docs/autofit.md.
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_PASSES_COSTMODEL_H
#define BMSYS_PASSES_COSTMODEL_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/JSON.h"

#include <map>
#include <string>
#include <vector>

namespace bmsys {

/// A machine as the calibration file describes it.
struct MachineModel {
  std::string device, backend, source;
  int64_t memoryBytes = 0;      // device memory per GPU (0: unknown)
  int64_t hostMemoryBytes = 0;  // host memory (0: unknown)
  int64_t workspaceBytes = 0;   // scratch memory the backend holds besides the plan
  /// GEMM rate (FLOP/s) against the GEMM's FLOPs, per dtype ("f32", "bf16",
  /// "f16", "int8"), sorted by FLOPs; interpolated in log(FLOPs).
  std::map<std::string, std::vector<std::pair<double, double>>> gemm;
  std::map<std::string, double> attention; // FLOP/s per dtype
  double memoryBandwidth = 0;              // bytes read + written per second
  double h2dBandwidth = 0, d2hBandwidth = 0;
  /// Bus bandwidth (nccl-tests' definition) per collective, bytes/s.
  std::map<std::string, double> busBandwidth;
  double collectiveLatency = 0; // seconds per collective call
  double launchLatency = 0;     // seconds per kernel launch (the floor of a tiny kernel)
  /// Seconds per kernel inside a replayed CUDA graph (0: not calibrated; then
  /// launchLatency). The CUDA backend replays every flush without collectives or host
  /// copies from a graph (docs/cuda.md), so a decode or forward step pays this.
  double graphKernelLatency = 0;
  /// Weight-streaming rate of decode-sized linears (M <= 8 rows: a GEMV reads the
  /// weight once) against the weight's bytes, sorted by bytes; interpolated in
  /// log(bytes). Empty: memoryBandwidth.
  std::vector<std::pair<double, double>> gemv;
  double hostAdamRate = 0;      // parameters per second of a host AdamW update
  bool overlap = false;         // the runtime overlaps collectives with compute

  double gemmRate(llvm::StringRef dtype, double flops) const;
  double attentionRate(llvm::StringRef dtype) const;
  double bus(llvm::StringRef collective) const;
  double gemvRate(double weightBytes) const;
  /// Fill ramp of a streaming kernel of `bytes`: the time a kernel streaming the GEMV
  /// table's sizes takes beyond bytes / memoryBandwidth (the mean over the table; the
  /// first bytes wait for DRAM latency, the last SMs drain alone), paid in proportion
  /// by kernels smaller than the table's smallest point. 0 without a GEMV table.
  double streamRamp(double bytes) const;
};

/// Reads a calibration file; on failure returns the reason (naming the file
/// and the field).
llvm::Expected<MachineModel> loadMachineModel(llvm::StringRef path);
llvm::Expected<MachineModel> parseMachineModel(const llvm::json::Value &json,
                                               llvm::StringRef path);

/// The predicted time of one call of a function.
struct StepEstimate {
  double total = 0;       // seconds, after overlap
  double gemm = 0;        // seconds in GEMMs (summed over launches)
  double attention = 0;   // in attention kernels
  double memoryBound = 0; // in other kernels
  double comm = 0;        // in collectives
  double host = 0;        // in host copies and host updates
  double exposedComm = 0; // total minus the compute stream's busy time (>= 0)
  double flops = 0;       // GEMM + attention FLOPs
  int64_t launches = 0;
};

/// Estimates one call of `function` at batch `batch`, sequence `seq`
/// (typically the module's bounds) and start position `startPos` (the KV
/// cache length before the call: 0 for training and prefill, the position
/// for a decode step). `computeDtype`, when given, is the float type the
/// runtime computes in (`bmsys-run --dtype`): every float buffer is then
/// priced in it. A memory schedule (bmsys_rt.memory_schedule) adds its host
/// copies per call, overlapped with the computation (BMInf's schedule). Fails
/// with a diagnostic on the launch when a rate it needs is missing from the
/// machine model.
mlir::FailureOr<StepEstimate> estimateStep(mlir::ModuleOp module, llvm::StringRef function,
                                           const MachineModel &machine, int64_t batch,
                                           int64_t seq, int64_t startPos = 0,
                                           mlir::Type computeDtype = {});

llvm::json::Value stepToJSON(const StepEstimate &e);

} // namespace bmsys

#endif // BMSYS_PASSES_COSTMODEL_H
