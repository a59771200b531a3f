//===- ArtifactSerializer.cpp - bmsys_rt -> FlatBuffers artifact ----------===//
//
// Writes what the IR says and decides nothing: a module that is not fully
// planned (an alloc without an offset) is an error.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "artifact_generated.h"

#include "llvm/ADT/StringMap.h"

using namespace mlir;
using namespace bmsys;
namespace fb = bmsys::artifact;

namespace {
constexpr uint32_t kFormatVersion = 1;

class Serializer {
public:
  explicit Serializer(ModuleOp module) : module(module) {}

  LogicalResult run(llvm::raw_ostream &os) {
    auto intAttr = [&](StringRef name) -> std::optional<int64_t> {
      if (auto a = module->getAttrOfType<IntegerAttr>(name))
        return a.getInt();
      return std::nullopt;
    };
    auto maxBatch = intAttr("bmsys_rt.max_batch"), maxSeq = intAttr("bmsys_rt.max_seq");
    auto pool = intAttr("bmsys_rt.activation_bytes"), state = intAttr("bmsys_rt.state_bytes");
    if (!maxBatch || !maxSeq || !pool || !state)
      // At the module's location without the module attached as a note (its whole text).
      return mlir::emitError(module.getLoc(), "bmsys-to-artifact: expects a lowered and planned bmsys_rt "
                              "module (run bmsys-infer-pipeline or bmsys-lower-to-rt and "
                              "bmsys-plan-memory)");

    for (Operation &op : module.getBody()->getOperations()) {
      if (auto w = dyn_cast<rt::WeightOp>(op)) {
        auto dtype = dtypeOf(op, w.getDtype());
        if (!dtype)
          return failure();
        std::vector<fb::Dim> dims;
        for (int64_t d : w.getShape())
          dims.emplace_back(fb::DimKind_Static, d);
        int64_t bytes = rt::elementBytes(w.getDtype());
        for (int64_t d : w.getShape())
          bytes *= d;
        symbolIndex[w.getSymName()] =
            addBuffer(w.getSymName(), *dtype, dims, fb::BufferKind_Weight, 0, bytes,
                      w.getFile(), w.getKey(), w.getShardRanks(), w.getFullShape(), &op);
      } else if (auto s = dyn_cast<rt::StateOp>(op)) {
        auto dtype = dtypeOf(op, s.getDtype());
        if (!dtype)
          return failure();
        std::vector<fb::Dim> dims;
        for (int64_t d : s.getShape())
          dims.emplace_back(fb::DimKind_Static, d);
        auto kind = s.getRole() == "optimizer" ? fb::BufferKind_OptimizerState
                                               : fb::BufferKind_State;
        symbolIndex[s.getSymName()] =
            addBuffer(s.getSymName(), *dtype, dims, kind, s.getOffset(), s.getBytes(), "", "",
                      s.getShardRanks(), s.getFullShape(), &op);
      }
    }

    std::vector<flatbuffers::Offset<fb::Function>> functions;
    for (auto func : module.getOps<rt::FuncOp>()) {
      auto f = serializeFunction(func);
      if (!f)
        return failure();
      functions.push_back(*f);
    }

    // Pipeline parallelism: each stage's pools (bmsys-plan-memory), both or neither.
    auto stageActivation = module->getAttrOfType<DenseI64ArrayAttr>("bmsys_rt.stage_activation_bytes");
    auto stageState = module->getAttrOfType<DenseI64ArrayAttr>("bmsys_rt.stage_state_bytes");
    flatbuffers::Offset<flatbuffers::Vector<uint64_t>> stageActivationVec = 0, stageStateVec = 0;
    if (stageActivation || stageState) {
      int64_t stages = intAttr("bmsys_rt.pipeline_stages").value_or(0);
      if (!stageActivation || !stageState || static_cast<int64_t>(stageActivation.size()) != stages ||
          static_cast<int64_t>(stageState.size()) != stages)
        return mlir::emitError(module.getLoc()) << "bmsys-to-artifact: bmsys_rt.stage_activation_bytes and "
                                     "bmsys_rt.stage_state_bytes must both have one size per pipeline "
                                     "stage (bmsys_rt.pipeline_stages = "
                                  << stages << "); run bmsys-plan-memory";
      auto sizes = [&](DenseI64ArrayAttr a) {
        return fbb.CreateVector(std::vector<uint64_t>(a.asArrayRef().begin(), a.asArrayRef().end()));
      };
      stageActivationVec = sizes(stageActivation);
      stageStateVec = sizes(stageState);
    }

    std::string config;
    if (auto c = module->getAttrOfType<StringAttr>("bmsys.config"))
      config = c.str();
    auto artifact = fb::CreateArtifact(
        fbb, kFormatVersion, fbb.CreateString("bmsys-translate"), fbb.CreateString(config),
        *maxBatch, *maxSeq, *pool, *state, fbb.CreateVector(buffers), fbb.CreateVector(functions),
        intAttr("bmsys_rt.data_parallel").value_or(0), memorySchedule(module),
        intAttr("bmsys_rt.tensor_parallel").value_or(0),
        intAttr("bmsys_rt.pipeline_stages").value_or(0),
        intAttr("bmsys_rt.pipeline_micro_batches").value_or(0), stageActivationVec, stageStateVec);
    fb::FinishArtifactBuffer(fbb, artifact);
    os.write(reinterpret_cast<const char *>(fbb.GetBufferPointer()), fbb.GetSize());
    return success();
  }

private:
  std::optional<fb::DType> dtypeOf(Operation &op, Type type) {
    if (type.isF32()) return fb::DType_F32;
    if (type.isF16()) return fb::DType_F16;
    if (type.isBF16()) return fb::DType_BF16;
    if (type.isInteger(64)) return fb::DType_I64;
    if (type.isInteger(32)) return fb::DType_I32;
    if (type.isInteger(8)) return fb::DType_I8;
    op.emitOpError() << "element type " << type << " has no artifact dtype";
    return std::nullopt;
  }

  uint32_t addBuffer(StringRef name, fb::DType dtype, const std::vector<fb::Dim> &dims,
                     fb::BufferKind kind, int64_t offset, int64_t bytes, StringRef file = "",
                     StringRef key = "", std::optional<int64_t> shardRanks = std::nullopt,
                     std::optional<ArrayRef<int64_t>> fullShape = std::nullopt,
                     Operation *symbol = nullptr) {
    // Tensor parallelism: the slice recorded by bmsys-tensor-parallel.
    auto tp = [&](StringRef attr) -> uint32_t {
      if (!symbol)
        return 0;
      auto a = symbol->getAttrOfType<IntegerAttr>(attr);
      return a ? static_cast<uint32_t>(a.getInt()) : 0;
    };
    buffers.push_back(fb::CreateBuffer(
        fbb, fbb.CreateString(name.str()), dtype, fbb.CreateVectorOfStructs(dims), kind, offset,
        bytes, file.empty() ? 0 : fbb.CreateString(file.str()),
        key.empty() ? 0 : fbb.CreateString(key.str()), shardRanks.value_or(0),
        fullShape ? fbb.CreateVector<int64_t>(fullShape->vec()) : 0, swapGroup(symbol), tp("tp_ranks"),
        tp("tp_dim"), placement(symbol)));
    return buffers.size() - 1;
  }

  // bmsys-offload: `placement = "host"` on a weight or state.
  static fb::Placement placement(Operation *symbol) {
    auto a = symbol ? symbol->getAttrOfType<StringAttr>("placement") : StringAttr();
    return a && a.getValue() == "host" ? fb::Placement_Host : fb::Placement_Device;
  }

  // bmsys-memory-schedule: the swapped layer a weight belongs to (-1: resident).
  static int32_t swapGroup(Operation *symbol) {
    auto a = symbol ? symbol->getAttrOfType<IntegerAttr>("swap_group") : IntegerAttr();
    return a ? static_cast<int32_t>(a.getInt()) : -1;
  }

  // bmsys-memory-schedule's plan (module attribute bmsys_rt.memory_schedule), or null.
  flatbuffers::Offset<fb::MemorySchedule> memorySchedule(ModuleOp module) {
    auto d = module->getAttrOfType<DictionaryAttr>("bmsys_rt.memory_schedule");
    if (!d)
      return 0;
    auto ints = [&](StringRef name) {
      std::vector<int64_t> v;
      if (auto a = d.getAs<DenseI64ArrayAttr>(name))
        v = a.asArrayRef().vec();
      return fbb.CreateVector(v);
    };
    auto num = [&](StringRef name) -> uint64_t {
      auto a = d.getAs<IntegerAttr>(name);
      return a ? a.getValue().getZExtValue() : 0;
    };
    auto link = d.getAs<FloatAttr>("link_gbps");
    auto groups = ints("swapped"), resident = ints("resident");
    return fb::CreateMemorySchedule(fbb, groups, resident, num("budget"), num("slot_bytes"),
                                    num("bytes_per_token"), link ? link.getValueAsDouble() : 0.0);
  }

  std::optional<std::vector<fb::Dim>> symbolicDims(Operation *op, ArrayAttr shape) {
    std::vector<fb::Dim> dims;
    for (Attribute d : shape) {
      if (auto i = dyn_cast<IntegerAttr>(d))
        dims.emplace_back(fb::DimKind_Static, i.getInt());
      else if (cast<StringAttr>(d).getValue() == rt::kBatchDim)
        dims.emplace_back(fb::DimKind_Batch, 0);
      else
        dims.emplace_back(fb::DimKind_Seq, 0);
    }
    return dims;
  }

  std::optional<flatbuffers::Offset<fb::Attr>> serializeAttr(Operation *op, NamedAttribute a) {
    auto name = fbb.CreateString(a.getName().str());
    Attribute v = a.getValue();
    if (auto i = dyn_cast<IntegerAttr>(v))
      return fb::CreateAttr(fbb, name, fb::AttrKind_Int, fbb.CreateVector<int64_t>({i.getInt()}));
    if (auto f = dyn_cast<FloatAttr>(v))
      return fb::CreateAttr(fbb, name, fb::AttrKind_Float, 0,
                            fbb.CreateVector<double>({f.getValueAsDouble()}));
    if (auto s = dyn_cast<StringAttr>(v))
      return fb::CreateAttr(fbb, name, fb::AttrKind_String, 0, 0, fbb.CreateString(s.str()));
    if (auto arr = dyn_cast<DenseI64ArrayAttr>(v))
      return fb::CreateAttr(fbb, name, fb::AttrKind_Ints,
                            fbb.CreateVector<int64_t>(arr.asArrayRef().vec()));
    if (auto arr = dyn_cast<ArrayAttr>(v)) {
      std::vector<int64_t> ints;
      std::vector<double> floats;
      for (Attribute e : arr) {
        if (auto i = dyn_cast<IntegerAttr>(e))
          ints.push_back(i.getInt());
        else if (auto f = dyn_cast<FloatAttr>(e))
          floats.push_back(f.getValueAsDouble());
      }
      if (ints.size() == arr.size())
        return fb::CreateAttr(fbb, name, fb::AttrKind_Ints, fbb.CreateVector(ints));
      if (floats.size() == arr.size())
        return fb::CreateAttr(fbb, name, fb::AttrKind_Floats, 0, fbb.CreateVector(floats));
    }
    op->emitOpError() << "parameter '" << a.getName() << "' has a value " << v
                      << " the artifact cannot hold";
    return std::nullopt;
  }

  /// bmsys-pipeline-schedule's stage of a function, -1 for none.
  static int32_t stageOf(rt::FuncOp func) {
    auto stage = func->getAttrOfType<IntegerAttr>("bmsys_rt.pipeline_stage");
    return stage ? static_cast<int32_t>(stage.getInt()) : -1;
  }

  std::optional<flatbuffers::Offset<fb::Function>> serializeFunction(rt::FuncOp func) {
    DenseMap<Value, uint32_t> index;
    std::vector<uint32_t> inputs, outputs;
    std::vector<flatbuffers::Offset<flatbuffers::String>> outputNames;
    std::vector<flatbuffers::Offset<fb::Instruction>> instructions;
    int temp = 0;
    for (Operation &op : func.getBody().front()) {
      if (auto in = dyn_cast<rt::InputOp>(op)) {
        auto dtype = dtypeOf(op, in.getDtype());
        auto dims = symbolicDims(&op, in.getShape());
        if (!dtype || !dims)
          return std::nullopt;
        index[in.getBuffer()] = addBuffer(in.getName(), *dtype, *dims, fb::BufferKind_Input, 0,
                                          0);
        inputs.push_back(index[in.getBuffer()]);
      } else if (auto alloc = dyn_cast<rt::AllocOp>(op)) {
        if (!alloc.getOffset() || !alloc.getBytes()) {
          alloc.emitOpError("has no offset in the activation pool; run bmsys-plan-memory");
          return std::nullopt;
        }
        auto dtype = dtypeOf(op, alloc.getDtype());
        auto dims = symbolicDims(&op, alloc.getShape());
        if (!dtype || !dims)
          return std::nullopt;
        std::string name = (func.getSymName() + ".t" + std::to_string(temp++)).str();
        index[alloc.getBuffer()] = addBuffer(name, *dtype, *dims, fb::BufferKind_Activation,
                                             *alloc.getOffset(), *alloc.getBytes());
      } else if (auto ref = dyn_cast<rt::WeightRefOp>(op)) {
        index[ref.getBuffer()] = symbolIndex.lookup(ref.getWeight());
      } else if (auto ref = dyn_cast<rt::StateRefOp>(op)) {
        index[ref.getBuffer()] = symbolIndex.lookup(ref.getState());
      } else if (auto out = dyn_cast<rt::OutputOp>(op)) {
        outputs.push_back(index.lookup(out.getBuffer()));
        outputNames.push_back(fbb.CreateString(out.getName().str()));
      } else if (auto launch = dyn_cast<rt::LaunchOp>(op)) {
        std::vector<uint32_t> ins, outs;
        for (Value v : launch.getInputs())
          ins.push_back(index.lookup(v));
        for (Value v : launch.getOutputs())
          outs.push_back(index.lookup(v));
        std::vector<flatbuffers::Offset<fb::Attr>> attrs;
        if (auto params = launch.getParams())
          for (NamedAttribute a : *params) {
            auto attr = serializeAttr(&op, a);
            if (!attr)
              return std::nullopt;
            attrs.push_back(*attr);
          }
        std::string loc;
        llvm::raw_string_ostream locStream(loc);
        op.getLoc().print(locStream);
        instructions.push_back(fb::CreateInstruction(
            fbb, fbb.CreateString(launch.getKernel().str()), fbb.CreateVector(ins),
            fbb.CreateVector(outs), fbb.CreateVector(attrs), fbb.CreateString(loc)));
      } else if (!isa<rt::DeallocOp>(op)) {
        op.emitOpError("cannot be written to an artifact");
        return std::nullopt;
      }
    }
    return fb::CreateFunction(fbb, fbb.CreateString(func.getSymName().str()),
                              fbb.CreateVector(inputs), fbb.CreateVector(outputs),
                              fbb.CreateVector(outputNames), fbb.CreateVector(instructions),
                              stageOf(func));
  }

  ModuleOp module;
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<fb::Buffer>> buffers;
  llvm::StringMap<uint32_t> symbolIndex;
};
} // namespace

LogicalResult bmsys::serializeArtifact(ModuleOp module, llvm::raw_ostream &os) {
  return Serializer(module).run(os);
}
