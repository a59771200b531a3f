// Tensor-core building blocks of the flash attention kernels (attention.cu forward,
// attention_grad_tc.cu backward): mma.sync m16n8k16 with f32 accumulation, ldmatrix
// fragment loads, cp.async copies, and two tile products on 16-row warp slices:
//   mma_abt: C[16 x 8*NT] += A[16 x 16*KC] . B^T, B stored as rows [n][k] (Q.K^T);
//   mma_ab:  C[16 x 8*DN] += A[16 x 16*KT] . B,   B stored as rows [k][n] (P.V),
//            A given as fragments (an accumulator turned into an operand by to_afrag).
// Fragment layouts are PTX's (mma.m16n8k16 .row.col): thread (g = lane / 4, c = lane % 4)
// holds accumulator rows g and g + 8, columns 2c and 2c + 1 of each 8-column tile.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace bmsys::rt::cuda {

template <class T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                        uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4],
                                                 uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ unsigned smem_u32(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared, asynchronously; src_bytes 0 fills zeros.
__device__ __forceinline__ void cp_async16z(void* dst, const void* src, unsigned src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldsm_x4(unsigned addr, uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                        uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldsm_x2(unsigned addr, uint32_t& r0, uint32_t& r1) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r0), "=r"(r1)
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldsm_x4_t(unsigned addr, uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                          uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr)
               : "memory");
}

// The double-buffered tile loop of the flash kernels: body(t, st) for t in [0, n), tile t
// in shared-memory stage st = t % 2 while load(t + 1, st ^ 1) fills the other stage with
// cp.async. The caller has issued load(0, 0) and committed it. Every thread of the block
// calls it (it synchronizes the block).
template <class Load, class Body>
__device__ __forceinline__ void double_buffered(int64_t n, Load&& load, Body&& body) {
  for (int64_t t = 0; t < n; ++t) {
    const int st = static_cast<int>(t & 1);
    if (t + 1 < n) load(t + 1, st ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    body(t, st);
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  cp_async_wait<0>();
}

// C[16 x 8*NT] += A . B^T for a warp: A rows [16][LD] (16*KC columns), B rows
// [8*NT][LD] (16*KC columns), both 16-bit in shared memory, rows 16-byte aligned.
template <class T, int KC, int NT>
__device__ __forceinline__ void mma_abt(float (&acc)[NT][4], const T* As, const T* Bs, int LD,
                                        int lane) {
  const int mi = lane >> 3, mr = lane & 7;
#pragma unroll
  for (int kc = 0; kc < KC; kc += 2) {
    uint32_t a0[4], a1[4];
    ldsm_x4(smem_u32(As + (lane & 15) * LD + kc * 16 + (lane >> 4) * 8), a0[0], a0[1], a0[2], a0[3]);
    if constexpr (KC > 1)
      ldsm_x4(smem_u32(As + (lane & 15) * LD + (kc + 1) * 16 + (lane >> 4) * 8), a1[0], a1[1], a1[2],
              a1[3]);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      uint32_t b0, b1, b2, b3;
      if constexpr (KC > 1) {
        ldsm_x4(smem_u32(Bs + (nt * 8 + mr) * LD + (kc + (mi >> 1)) * 16 + (mi & 1) * 8), b0, b1, b2, b3);
        mma16816<T>(acc[nt], a0, b0, b1);
        mma16816<T>(acc[nt], a1, b2, b3);
      } else {
        ldsm_x2(smem_u32(Bs + (nt * 8 + mr) * LD + (mi & 1) * 8), b0, b1);
        mma16816<T>(acc[nt], a0, b0, b1);
      }
    }
  }
}

// An accumulator C[16 x 16*KT] (2*KT tiles of 8 columns) as A fragments of 16 x 16 chunks.
template <class T, int KT>
__device__ __forceinline__ void to_afrag(uint32_t (&a)[KT][4], const float (&acc)[2 * KT][4]) {
#pragma unroll
  for (int k = 0; k < KT; ++k) {
    a[k][0] = pack2<T>(acc[2 * k][0], acc[2 * k][1]);
    a[k][1] = pack2<T>(acc[2 * k][2], acc[2 * k][3]);
    a[k][2] = pack2<T>(acc[2 * k + 1][0], acc[2 * k + 1][1]);
    a[k][3] = pack2<T>(acc[2 * k + 1][2], acc[2 * k + 1][3]);
  }
}

// C[16 x 8*DN] += A . B for a warp: A as fragments (16 x 16*KT), B rows [16*KT][LD] in
// shared memory (8*DN columns), read transposed by ldmatrix. DN is even.
template <class T, int KT, int DN>
__device__ __forceinline__ void mma_ab(float (&acc)[DN][4], const uint32_t (&a)[KT][4], const T* Bs,
                                       int LD, int lane) {
  const int mi = lane >> 3, mr = lane & 7;
#pragma unroll
  for (int kc = 0; kc < KT; ++kc)
#pragma unroll
    for (int dn = 0; dn < DN; dn += 2) {
      uint32_t b0, b1, b2, b3;
      ldsm_x4_t(smem_u32(Bs + (kc * 16 + (mi & 1) * 8 + mr) * LD + (dn + (mi >> 1)) * 8), b0, b1, b2, b3);
      mma16816<T>(acc[dn], a[kc], b0, b1);
      mma16816<T>(acc[dn + 1], a[kc], b2, b3);
    }
}

}  // namespace bmsys::rt::cuda
