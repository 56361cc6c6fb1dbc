// GEMV over a GGUF's own groups with float32 activations (see qgemv.py for why).
// Q4_1 rows: q (n, nb*16) uint8, byte j of a group holding element j (low nibble) and j+16 (high nibble);
// d, m (n, nb) float32; row r of the weight is d*q + m per group of 32.
// Q8_0 rows: q (n, k) int8, d (n, k/32) float32; row r of the weight is d*q per group of 32.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstdint>
#include <vector>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

// Each group's sum of x: the m term of a Q4_1 row is m * gsum, whatever q holds.
static void group_sums(const float* x, int64_t nb, float* gsum) {
  for (int64_t g = 0; g < nb; ++g) {
    float s = 0.f;
    for (int j = 0; j < 32; ++j) s += x[g * 32 + j];
    gsum[g] = s;
  }
}

static inline float q4_1_row(const float* x, const float* gsum, const uint8_t* qr, const float* dr,
                             const float* mr, int64_t nb) {
  float tail = 0.f;
  for (int64_t g = 0; g < nb; ++g) tail += mr[g] * gsum[g];
#ifdef __AVX512F__
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi32(15);
  for (int64_t g = 0; g < nb; ++g) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qr + g * 16)));
    const __m512 dv = _mm512_set1_ps(dr[g]);
    const __m512 lo = _mm512_mul_ps(dv, _mm512_cvtepi32_ps(_mm512_and_si512(v, low4)));
    const __m512 hi = _mm512_mul_ps(dv, _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4)));
    a0 = _mm512_fmadd_ps(lo, _mm512_loadu_ps(x + g * 32), a0);
    a1 = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + g * 32 + 16), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + tail;
#else
  float acc = 0.f;
  for (int64_t g = 0; g < nb; ++g) {
    const uint8_t* qs = qr + g * 16;
    const float* xg = x + g * 32;
    for (int j = 0; j < 16; ++j)
      acc += dr[g] * (float)(qs[j] & 15) * xg[j] + dr[g] * (float)(qs[j] >> 4) * xg[j + 16];
  }
  return acc + tail;
#endif
}

static inline float q8_0_row(const float* x, const int8_t* qr, const float* dr, int64_t nb) {
#ifdef __AVX512F__
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  for (int64_t g = 0; g < nb; ++g) {
    const __m512 dv = _mm512_set1_ps(dr[g]);
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qr + g * 32));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qr + g * 32 + 16));
    a0 = _mm512_fmadd_ps(_mm512_mul_ps(dv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0))), _mm512_loadu_ps(x + g * 32), a0);
    a1 = _mm512_fmadd_ps(_mm512_mul_ps(dv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1))), _mm512_loadu_ps(x + g * 32 + 16), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#else
  float acc = 0.f;
  for (int64_t j = 0; j < nb * 32; ++j) acc += dr[j / 32] * (float)qr[j] * x[j];
  return acc;
#endif
}

torch::Tensor q4_1_gemv(torch::Tensor x, torch::Tensor q, torch::Tensor d, torch::Tensor m) {
  const int64_t n = q.size(0), nb = d.size(1);
  const float* xs = x.data_ptr<float>();
  const uint8_t* qp = q.data_ptr<uint8_t>();
  const float* dp = d.data_ptr<float>();
  const float* mp = m.data_ptr<float>();
  auto out = torch::empty({n}, x.options());
  float* o = out.data_ptr<float>();
  std::vector<float> gsum(nb);
  group_sums(xs, nb, gsum.data());
  at::parallel_for(0, n, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) o[r] = q4_1_row(xs, gsum.data(), qp + r * nb * 16, dp + r * nb, mp + r * nb, nb);
  });
  return out;
}

torch::Tensor q8_0_gemv(torch::Tensor x, torch::Tensor q, torch::Tensor d) {
  const int64_t n = q.size(0), nb = d.size(1);
  const float* xs = x.data_ptr<float>();
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* dp = d.data_ptr<float>();
  auto out = torch::empty({n}, x.options());
  float* o = out.data_ptr<float>();
  at::parallel_for(0, n, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) o[r] = q8_0_row(xs, qp + r * nb * 32, dp + r * nb, nb);
  });
  return out;
}
