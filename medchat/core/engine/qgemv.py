"""A compiled GEMV over the GGUF's own 4-bit (Q4_1) and 8-bit (Q8_0) groups, with float32 activations.

Why: a float32 decode token reads ~540 MB of weights and is bound by memory bandwidth (68% of its CPU
time is `aten::mm`; benchmarks/README.md). The embedded model's weights *are* Q4_1 groups (the float
model is their dequantisation), so multiplying by the groups directly reads ~6x fewer bytes and
computes the same products: w = d*q + m, summed in float32 in another order (relative error ~1e-7).
torch's own int4 kernel is exact only with float32 activations, where it is 20x slower than float.

Built with torch's C++ extension loader the first time it is needed (about 35 s on a 2-core CPU, once
per machine, torch version and source; kept in torch's extension cache, TORCH_EXTENSIONS_DIR or
~/.cache/torch_extensions, so every MEDCHAT_HOME shares it). Where no compiler is found, `load()`
returns None and the engine decodes in float: slower, same answers.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cstdint>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

// q: (n, nb*16) uint8, byte j of a group holding element j (low nibble) and j+16 (high nibble);
// d, m: (n, nb) float32. Row r of the weight is d*q + m per group of 32.
torch::Tensor q4_1_gemv(torch::Tensor x, torch::Tensor q, torch::Tensor d, torch::Tensor m) {
  const int64_t n = q.size(0), nb = d.size(1);
  const float* xs = x.data_ptr<float>();
  const uint8_t* qp = q.data_ptr<uint8_t>();
  const float* dp = d.data_ptr<float>();
  const float* mp = m.data_ptr<float>();
  auto out = torch::empty({n}, x.options());
  float* o = out.data_ptr<float>();
  std::vector<float> gsum(nb);  // each group's sum of x: the m term is m * gsum, whatever q holds
  for (int64_t g = 0; g < nb; ++g) { float s = 0.f; for (int j = 0; j < 32; ++j) s += xs[g * 32 + j]; gsum[g] = s; }
  at::parallel_for(0, n, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* qr = qp + r * nb * 16;
      const float* dr = dp + r * nb;
      const float* mr = mp + r * nb;
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
        a0 = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xs + g * 32), a0);
        a1 = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xs + g * 32 + 16), a1);
      }
      o[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + tail;
#else
      float acc = 0.f;
      for (int64_t g = 0; g < nb; ++g) {
        const uint8_t* qs = qr + g * 16;
        const float* xg = xs + g * 32;
        for (int j = 0; j < 16; ++j)
          acc += dr[g] * (float)(qs[j] & 15) * xg[j] + dr[g] * (float)(qs[j] >> 4) * xg[j + 16];
      }
      o[r] = acc + tail;
#endif
    }
  });
  return out;
}

// q: (n, k) int8, d: (n, k/32) float32. Row r of the weight is d*q per group of 32.
torch::Tensor q8_0_gemv(torch::Tensor x, torch::Tensor q, torch::Tensor d) {
  const int64_t n = q.size(0), k = q.size(1), nb = k / 32;
  const float* xs = x.data_ptr<float>();
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* dp = d.data_ptr<float>();
  auto out = torch::empty({n}, x.options());
  float* o = out.data_ptr<float>();
  at::parallel_for(0, n, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int8_t* qr = qp + r * k;
      const float* dr = dp + r * nb;
#ifdef __AVX512F__
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
      for (int64_t g = 0; g < nb; ++g) {
        const __m512 dv = _mm512_set1_ps(dr[g]);
        const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qr + g * 32));
        const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qr + g * 32 + 16));
        a0 = _mm512_fmadd_ps(_mm512_mul_ps(dv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0))), _mm512_loadu_ps(xs + g * 32), a0);
        a1 = _mm512_fmadd_ps(_mm512_mul_ps(dv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1))), _mm512_loadu_ps(xs + g * 32 + 16), a1);
      }
      o[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#else
      float acc = 0.f;
      for (int64_t j = 0; j < k; ++j) acc += dr[j / 32] * (float)qr[j] * xs[j];
      o[r] = acc;
#endif
    }
  });
  return out;
}
"""

_lock = threading.Lock()
_state: dict = {}


def _cpu_signature() -> str:
    """-march=native code runs only where it was built: the build is keyed by this CPU's flags."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        import platform

        flags = platform.processor() or platform.machine()
    return flags


def build_key() -> str:
    import torch

    return hashlib.sha256(f"{_SOURCE}|{torch.__version__}|{_cpu_signature()}".encode()).hexdigest()[:12]


def load():
    """The compiled module (`q4_1_gemv`, `q8_0_gemv`), or None where it cannot be built (`unavailable()`
    says why). Compiled once per machine and torch version, then loaded from the cache (~0.1 s)."""
    with _lock:
        if "module" in _state:
            return _state["module"]
        try:
            from torch.utils.cpp_extension import load_inline

            from medchat.core.quiet import library_warnings

            with library_warnings():
                module = load_inline(f"medchat_qgemv_{build_key()}", _SOURCE, functions=["q4_1_gemv", "q8_0_gemv"],
                                     extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"],
                                     verbose=False)
            _state.update(module=module, reason="")
        except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, a failed build: decode in float
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            _state.update(module=None, reason=f"{type(exc).__name__}: {first[:200]}")
        return _state["module"]


def unavailable() -> str:
    """Why `load()` returned None ("" if it did not, or was not called)."""
    return _state.get("reason", "")
