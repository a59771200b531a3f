//===- CompressConfig.cpp - the compression config file -------------------===//
#include "passes/compress/CompressConfig.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <cmath>
#include <functional>

using namespace bmsys;
using llvm::json::Array;
using llvm::json::Object;
using llvm::json::Value;

namespace {
/// Reads the fields of one JSON object, remembering the first error. Every key
/// of the object must be read by some getter, or it is reported as unknown.
class Reader {
public:
  Reader(const Object &object, std::string path, std::string &error)
      : object(object), path(std::move(path)), error(error) {}

  void fail(llvm::StringRef key, const llvm::Twine &message) {
    if (error.empty())
      error = (name(key) + ": " + message).str();
  }
  std::string name(llvm::StringRef key) const {
    return path.empty() ? key.str() : path + "." + key.str();
  }

  void string(llvm::StringRef key, std::string &out, llvm::ArrayRef<llvm::StringRef> allowed = {}) {
    const Value *v = find(key);
    if (!v)
      return;
    auto s = v->getAsString();
    if (!s)
      return fail(key, "must be a string");
    if (!allowed.empty() && !llvm::is_contained(allowed, *s))
      return fail(key, "must be one of " + llvm::join(allowed, ", ") + ", not '" + *s + "'");
    out = s->str();
  }
  void number(llvm::StringRef key, double &out, double min, bool minExclusive) {
    const Value *v = find(key);
    if (!v)
      return;
    auto d = v->getAsNumber();
    if (!d || !std::isfinite(*d))
      return fail(key, "must be a number");
    if (minExclusive ? !(*d > min) : !(*d >= min))
      return fail(key, llvm::formatv("must be {0} {1}", minExclusive ? ">" : ">=", min).str());
    out = *d;
  }
  void integer(llvm::StringRef key, int64_t &out, int64_t min, int64_t max = INT32_MAX) {
    const Value *v = find(key);
    if (!v)
      return;
    auto i = v->getAsInteger();
    if (!i)
      return fail(key, "must be an integer");
    if (*i < min || *i > max)
      return fail(key, "must be in [" + llvm::Twine(min) + ", " + llvm::Twine(max) + "], not " +
                           llvm::Twine(*i));
    out = *i;
  }
  void boolean(llvm::StringRef key, bool &out) {
    const Value *v = find(key);
    if (!v)
      return;
    auto b = v->getAsBoolean();
    if (!b)
      return fail(key, "must be true or false");
    out = *b;
  }
  void strings(llvm::StringRef key, std::vector<std::string> &out) {
    const Value *v = find(key);
    if (!v)
      return;
    const Array *a = v->getAsArray();
    if (!a)
      return fail(key, "must be an array of strings");
    for (const Value &item : *a) {
      auto s = item.getAsString();
      if (!s)
        return fail(key, "must be an array of strings");
      out.push_back(s->str());
    }
  }
  const Value *find(llvm::StringRef key) {
    seen.insert(key);
    return object.get(key);
  }
  bool has(llvm::StringRef key) const { return object.get(key) != nullptr; }
  void rejectUnknown() {
    std::vector<std::string> keys;
    for (const auto &kv : object)
      if (!seen.contains(kv.first.str()))
        keys.push_back(kv.first.str());
    llvm::sort(keys);
    if (!keys.empty())
      fail(keys.front(), "unknown key");
  }

private:
  const Object &object;
  std::string path;
  std::string &error;
  llvm::StringSet<> seen;
};

void readPruning(const Object &o, std::string path, CompressConfig::Pruning &p, std::string &error) {
  Reader r(o, std::move(path), error);
  r.string("method", p.method, {"magnitude", "2:4", "heads", "layers"});
  r.number("sparsity", p.sparsity, 0.0, false);
  if (p.sparsity >= 1)
    r.fail("sparsity", "must be < 1");
  r.string("params", p.params);
  r.integer("count", p.count, 1);
  r.strings("calibration", p.calibration);
  r.string("output", p.output);
  if ((p.method == "heads" || p.method == "layers") && p.calibration.empty() && error.empty())
    r.fail("calibration", "method " + p.method + " needs calibration files");
  r.rejectUnknown();
}

void readDistillation(const Object &o, CompressConfig::Distillation &d, std::string &error) {
  Reader r(o, "distillation", error);
  if (!r.has("teacher"))
    r.fail("teacher", "is required");
  r.string("teacher", d.teacher);
  r.number("temperature", d.temperature, 0.0, true);
  r.number("soft_ce_scale", d.softCeScale, 0.0, false);
  r.number("hidden_scale", d.hiddenScale, 0.0, false);
  if (const Value *v = r.find("layer_map")) {
    const Array *a = v->getAsArray();
    if (!a)
      r.fail("layer_map", "must be an array of [student, teacher] layer pairs");
    else
      for (const Value &item : *a) {
        const Array *pair = item.getAsArray();
        std::optional<int64_t> s, t;
        if (pair && pair->size() == 2) {
          s = (*pair)[0].getAsInteger();
          t = (*pair)[1].getAsInteger();
        }
        if (!s || !t || *s < 0 || *t < 0 || *s > INT32_MAX || *t > INT32_MAX) {
          r.fail("layer_map", "must be an array of [student, teacher] pairs of layer indices");
          break;
        }
        d.layerMap.push_back({*s, *t});
      }
  }
  r.boolean("projection", d.projection);
  r.string("prefix", d.prefix);
  if (d.prefix.empty())
    r.fail("prefix", "must not be empty (teacher keys would collide with the student's)");
  r.string("teacher_output", d.teacherOutput);
  r.rejectUnknown();
}

void readQuantization(const Object &o, CompressConfig::Quantization &q, std::string &error) {
  Reader r(o, "quantization", error);
  r.string("mode", q.mode, {"qat", "int8"});
  r.string("activations", q.activations, {"float", "int8"});
  r.string("output", q.output);
  r.strings("skip", q.skip);
  r.rejectUnknown();
}

void readMoefication(const Object &o, CompressConfig::Moefication &m, std::string &error) {
  Reader r(o, "moefication", error);
  r.integer("experts", m.experts, 1, 1 << 16);
  r.integer("top_k", m.topK, 1, 1 << 16);
  if (m.topK > m.experts)
    r.fail("top_k", "must be at most experts (" + llvm::Twine(m.experts) + ")");
  r.integer("iterations", m.iterations, 1, 10000);
  r.string("output", m.output);
  r.rejectUnknown();
}
} // namespace

llvm::Expected<CompressConfig> bmsys::parseCompressConfig(llvm::StringRef text,
                                                          llvm::StringRef fileName) {
  auto fail = [&](const llvm::Twine &message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   fileName + ": " + message);
  };
  llvm::Expected<Value> parsed = llvm::json::parse(text);
  if (!parsed)
    return fail("not valid JSON: " + llvm::toString(parsed.takeError()));
  const Object *root = parsed->getAsObject();
  if (!root)
    return fail("must be a JSON object with sections pruning, distillation, quantization, "
                "moefication");
  CompressConfig config;
  std::string error;
  Reader r(*root, "", error);
  if (const Value *v = r.find("pruning")) {
    // One stage (an object) or several (an array of objects), applied in order.
    if (const Object *o = v->getAsObject()) {
      readPruning(*o, "pruning", config.pruning.emplace_back(), error);
    } else if (const Array *a = v->getAsArray()) {
      for (size_t i = 0; i < a->size(); ++i) {
        const Object *stage = (*a)[i].getAsObject();
        if (!stage) {
          r.fail("pruning", "must be an object or an array of objects");
          break;
        }
        readPruning(*stage, "pruning[" + std::to_string(i) + "]", config.pruning.emplace_back(),
                    error);
      }
    } else {
      r.fail("pruning", "must be an object or an array of objects");
    }
  }
  struct Section {
    const char *key;
    std::function<void(const Object &)> read;
  };
  for (const Section &s : {
           Section{"distillation",
                   [&](const Object &o) { readDistillation(o, config.distillation.emplace(CompressConfig::Distillation{}), error); }},
           Section{"quantization",
                   [&](const Object &o) { readQuantization(o, config.quantization.emplace(CompressConfig::Quantization{}), error); }},
           Section{"moefication",
                   [&](const Object &o) { readMoefication(o, config.moefication.emplace(CompressConfig::Moefication{}), error); }},
       }) {
    if (const Value *v = r.find(s.key)) {
      if (const Object *o = v->getAsObject())
        s.read(*o);
      else
        r.fail(s.key, "must be an object");
    }
  }
  r.rejectUnknown();
  if (!error.empty())
    return fail(error);
  return config;
}
