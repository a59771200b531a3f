// Helpers shared by the runtime unit tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "runtime/core/error.h"

namespace bmsys::rt::test {

// A fresh directory under $TMPDIR, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/bmsys-rt-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Expects `fn` to throw bmsys::rt::Error whose message contains every fragment.
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << "message: " << msg << "\nmissing: " << f;
    return;
  }
  ADD_FAILURE() << "no bmsys::rt::Error thrown";
}

inline void expect_near_rel(const std::vector<float>& got, const std::vector<double>& want,
                            double tol = 1e-5) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << "at element " << i;
}

// The gradient of a scalar function f at x by central differences of step h: the
// reference for the gradients of the training and distillation kernels.
inline std::vector<double> fd_grad(const std::function<double(const std::vector<double>&)>& f,
                                   std::vector<double> x, double h = 1e-5) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double fp = f(x);
    x[i] = x0 - h;
    const double fm = f(x);
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

// Naive attention without a cache (keys: this call's positions), in double: q
// [B,S,Nq*D], k and v [B,S,Nkv*D] of float or double.
template <class T>
std::vector<double> ref_attention(const std::vector<T>& q, const std::vector<T>& k, const std::vector<T>& v,
                                  int64_t B, int64_t S, int64_t Nq, int64_t Nkv, int64_t D, double scale,
                                  bool causal) {
  std::vector<double> y(B * S * Nq * D);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < Nq; ++h) {
        int64_t kh = h / (Nq / Nkv), L = causal ? s + 1 : S;
        std::vector<double> sc(L);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < L; ++j) {
          double d = 0;
          for (int64_t i = 0; i < D; ++i)
            d += static_cast<double>(q[((b * S + s) * Nq + h) * D + i]) * k[((b * S + j) * Nkv + kh) * D + i];
          sc[j] = d * scale;
          mx = std::max(mx, sc[j]);
        }
        for (double& e : sc) sum += (e = std::exp(e - mx));
        for (int64_t i = 0; i < D; ++i) {
          double acc = 0;
          for (int64_t j = 0; j < L; ++j) acc += sc[j] * v[((b * S + j) * Nkv + kh) * D + i];
          y[((b * S + s) * Nq + h) * D + i] = acc / sum;
        }
      }
  return y;
}

// Layer norm of rows of H elements (float or double), in double.
template <class T>
std::vector<double> ref_layer_norm(const std::vector<T>& x, const std::vector<T>& g, const std::vector<T>& b,
                                   int64_t rows, int64_t H, double eps) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0;
    for (int64_t i = 0; i < H; ++i) mu += x[r * H + i];
    mu /= H;
    for (int64_t i = 0; i < H; ++i) var += (x[r * H + i] - mu) * (x[r * H + i] - mu);
    var /= H;
    for (int64_t i = 0; i < H; ++i) y[r * H + i] = (x[r * H + i] - mu) / std::sqrt(var + eps) * g[i] + b[i];
  }
  return y;
}

// Mean cross-entropy of logits [B,S,V] (float or double) against labels [B,S], in
// double; shift: position s is scored against label s+1.
template <class T>
double ref_cross_entropy(const std::vector<T>& logits, const std::vector<int64_t>& labels, int64_t B, int64_t S,
                         int64_t V, bool shift) {
  double total = 0;
  int64_t n = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S - (shift ? 1 : 0); ++s) {
      const T* row = &logits[(b * S + s) * V];
      double mx = *std::max_element(row, row + V), sum = 0;
      for (int64_t i = 0; i < V; ++i) sum += std::exp(row[i] - mx);
      total += mx + std::log(sum) - row[labels[b * S + s + (shift ? 1 : 0)]];
      ++n;
    }
  return total / n;
}

#ifdef BMSYS_RUN
// bmsys-run (the build's) with `args`: its exit status and output, through files in `dir`.
struct CliResult {
  int rc;
  std::string out, err;
};

inline CliResult run_cli(const TempDir& dir, const std::string& args) {
  std::string cmd = std::string(BMSYS_RUN) + " " + args + " > '" + dir.file("stdout") + "' 2> '" + dir.file("stderr") + "'";
  int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_bytes(dir.file("stdout")), read_bytes(dir.file("stderr"))};
}
#endif

}  // namespace bmsys::rt::test
