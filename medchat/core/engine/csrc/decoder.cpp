// One decode token of a Llama-family model on the GGUF's Q4_1 groups, in a single call (fast_llama's
// q4-gguf step). Why: in Python a token is ~1,500 small ops (norms, rotary, LoRA's two matmuls per
// projection, attention); their dispatch cost as much as the 4-bit GEMVs. The numerics are the Python
// path's: float32 activations, RMSNorm as transformers computes it, LoRA in float beside the base.
#include <pybind11/pybind11.h>
#include <algorithm>
#include <cstring>

struct Proj {
  torch::Tensor q, d, m, bias, a, b;  // a (R, in), b (out, R): the active LoRA chain, scale folded in
  int64_t rows = 0, nb = 0;
};

struct Layer {
  torch::Tensor ln1, ln2, k, v;  // k, v: (1, n_kv, capacity, head_dim) caches, written at pos
  Proj p[4];                     // qkv, o, gate_up, down
};

static float dot(const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  float s = 0.f;
#ifdef __AVX512F__
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  s = _mm512_reduce_add_ps(acc);
#endif
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

static void check_f32(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.device().is_cpu(),
              what, " must be a contiguous float32 CPU tensor");
}

class Q4Decoder {
 public:
  Q4Decoder(int64_t n_layers, int64_t n_heads, int64_t n_kv, int64_t head_dim, double eps, torch::Tensor embed,
            torch::Tensor norm)
      : layers_(n_layers), n_heads_(n_heads), n_kv_(n_kv), hd_(head_dim), eps_((float)eps), embed_(embed),
        norm_(norm) {
    check_f32(embed, "embed");
    check_f32(norm, "norm");
    TORCH_CHECK(n_heads % n_kv == 0 && head_dim % 2 == 0, "unsupported head layout");
    hidden_ = embed.size(1);
  }

  void set_layer(int64_t i, torch::Tensor ln1, torch::Tensor ln2) {
    check_f32(ln1, "ln1");
    check_f32(ln2, "ln2");
    layers_.at(i).ln1 = ln1;
    layers_.at(i).ln2 = ln2;
  }

  void set_proj(int64_t i, int64_t key, torch::Tensor q, torch::Tensor d, torch::Tensor m,
                c10::optional<torch::Tensor> bias) {
    TORCH_CHECK(q.scalar_type() == torch::kUInt8 && q.is_contiguous(), "q must be contiguous uint8");
    check_f32(d, "d");
    check_f32(m, "m");
    TORCH_CHECK(q.size(0) == d.size(0) && q.size(1) == d.size(1) * 16 && m.sizes() == d.sizes(), "group shapes differ");
    Proj& p = layers_.at(i).p[key];
    p.q = q, p.d = d, p.m = m, p.rows = d.size(0), p.nb = d.size(1);
    p.bias = bias.has_value() ? *bias : torch::Tensor();
    if (p.bias.defined()) check_f32(p.bias, "bias");
  }

  void set_lora(int64_t i, int64_t key, c10::optional<torch::Tensor> a, c10::optional<torch::Tensor> b) {
    Proj& p = layers_.at(i).p[key];
    if (!a.has_value() || !b.has_value()) {
      p.a = p.b = torch::Tensor();
      return;
    }
    check_f32(*a, "lora_a");
    check_f32(*b, "lora_b");
    TORCH_CHECK(a->size(1) == p.nb * 32 && b->size(0) == p.rows && b->size(1) == a->size(0), "LoRA shapes differ");
    p.a = *a, p.b = *b;
  }

  void set_cache(int64_t i, torch::Tensor k, torch::Tensor v) {
    check_f32(k, "k cache");
    check_f32(v, "v cache");
    TORCH_CHECK(k.dim() == 4 && k.size(1) == n_kv_ && k.size(3) == hd_ && k.sizes() == v.sizes(), "cache shape");
    layers_.at(i).k = k;
    layers_.at(i).v = v;
  }

  void set_head_q8(torch::Tensor q, torch::Tensor d) {
    TORCH_CHECK(q.scalar_type() == torch::kInt8 && q.is_contiguous() && q.size(1) == hidden_, "head q");
    check_f32(d, "head d");
    head_q_ = q, head_d_ = d, head_w_ = torch::Tensor();
  }

  void set_head_float(torch::Tensor w) {
    check_f32(w, "head weight");
    head_w_ = w, head_q_ = head_d_ = torch::Tensor();
  }

  // Logits (vocab,) for `token` at position `pos`; cos, sin: the rotary tables' row for pos (head_dim,).
  torch::Tensor step(int64_t token, int64_t pos, torch::Tensor cos, torch::Tensor sin) {
    check_f32(cos, "cos");
    check_f32(sin, "sin");
    TORCH_CHECK(token >= 0 && token < embed_.size(0), "token id out of range");
    const int64_t H = hidden_, qs = n_heads_ * hd_, kvs = n_kv_ * hd_;
    const int64_t inter = layers_[0].p[2].rows / 2;
    std::vector<float> x(embed_.data_ptr<float>() + token * H, embed_.data_ptr<float>() + (token + 1) * H);
    std::vector<float> xn(H), tmp(H), qkv(qs + 2 * kvs), att(qs), gu(2 * inter), act(inter);
    const float* c = cos.data_ptr<float>();
    const float* s = sin.data_ptr<float>();
    for (Layer& L : layers_) {
      TORCH_CHECK(L.k.defined() && pos < L.k.size(2), "the KV cache does not hold position ", pos);
      rmsnorm(x.data(), L.ln1, xn.data());
      project(L.p[0], xn.data(), qkv.data());
      rope(qkv.data(), n_heads_, c, s);
      rope(qkv.data() + qs, n_kv_, c, s);
      const int64_t cap = L.k.size(2);
      float* kc = L.k.data_ptr<float>();
      float* vc = L.v.data_ptr<float>();
      for (int64_t h = 0; h < n_kv_; ++h) {
        std::memcpy(kc + (h * cap + pos) * hd_, qkv.data() + qs + h * hd_, hd_ * sizeof(float));
        std::memcpy(vc + (h * cap + pos) * hd_, qkv.data() + qs + kvs + h * hd_, hd_ * sizeof(float));
      }
      attend(qkv.data(), kc, vc, cap, pos, att.data());
      project(L.p[1], att.data(), tmp.data());
      for (int64_t i = 0; i < H; ++i) x[i] += tmp[i];
      rmsnorm(x.data(), L.ln2, xn.data());
      project(L.p[2], xn.data(), gu.data());
      for (int64_t i = 0; i < inter; ++i) act[i] = gu[i] / (1.f + std::exp(-gu[i])) * gu[inter + i];
      project(L.p[3], act.data(), tmp.data());
      for (int64_t i = 0; i < H; ++i) x[i] += tmp[i];
    }
    rmsnorm(x.data(), norm_, xn.data());
    const auto last = torch::from_blob(xn.data(), {H}, torch::kFloat32);
    return head_w_.defined() ? at::mv(head_w_, last) : q8_0_gemv(last, head_q_, head_d_);
  }

 private:
  // transformers' LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then times the weight
  void rmsnorm(const float* x, const torch::Tensor& w, float* out) const {
    double ss = 0.0;
    for (int64_t i = 0; i < hidden_; ++i) ss += (double)x[i] * x[i];
    const float r = 1.f / std::sqrt((float)(ss / hidden_) + eps_);
    const float* wp = w.data_ptr<float>();
    for (int64_t i = 0; i < hidden_; ++i) out[i] = wp[i] * (x[i] * r);
  }

  // y = base(x) + bias + B (A x), rows split across the intra-op threads
  void project(const Proj& p, const float* x, float* y) const {
    const int64_t in = p.nb * 32;
    std::vector<float> gsum(p.nb);
    group_sums(x, p.nb, gsum.data());
    const int64_t R = p.a.defined() ? p.a.size(0) : 0;
    std::vector<float> t(R);
    for (int64_t k = 0; k < R; ++k) t[k] = dot(p.a.data_ptr<float>() + k * in, x, in);
    const float* bp = R ? p.b.data_ptr<float>() : nullptr;
    const float* bias = p.bias.defined() ? p.bias.data_ptr<float>() : nullptr;
    const uint8_t* qp = p.q.data_ptr<uint8_t>();
    const float* dp = p.d.data_ptr<float>();
    const float* mp = p.m.data_ptr<float>();
    const int64_t nb = p.nb;
    at::parallel_for(0, p.rows, 32, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float v = q4_1_row(x, gsum.data(), qp + r * nb * 16, dp + r * nb, mp + r * nb, nb);
        if (bias) v += bias[r];
        if (R) v += dot(bp + r * R, t.data(), R);
        y[r] = v;
      }
    });
  }

  // rotate each head's halves as transformers' apply_rotary_pos_emb does: x*cos + rotate_half(x)*sin
  void rope(float* v, int64_t heads, const float* c, const float* s) const {
    const int64_t half = hd_ / 2;
    for (int64_t h = 0; h < heads; ++h) {
      float* p = v + h * hd_;
      for (int64_t i = 0; i < half; ++i) {
        const float a = p[i], b = p[i + half];
        p[i] = a * c[i] - b * s[i];
        p[i + half] = b * c[i + half] + a * s[i + half];
      }
    }
  }

  // softmax(q k^T / sqrt(d)) v over positions 0..pos, each query head reading kv head h / (n_heads / n_kv)
  void attend(const float* q, const float* kc, const float* vc, int64_t cap, int64_t pos, float* out) const {
    const float scale = 1.f / std::sqrt((float)hd_);
    const int64_t rep = n_heads_ / n_kv_, n = pos + 1;
    at::parallel_for(0, n_heads_, 1, [&](int64_t h0, int64_t h1) {
      std::vector<float> sc(n);
      for (int64_t h = h0; h < h1; ++h) {
        const float* qh = q + h * hd_;
        const float* kh = kc + (h / rep) * cap * hd_;
        const float* vh = vc + (h / rep) * cap * hd_;
        float mx = -INFINITY;
        for (int64_t t = 0; t < n; ++t) mx = std::max(mx, sc[t] = dot(qh, kh + t * hd_, hd_) * scale);
        float sum = 0.f;
        for (int64_t t = 0; t < n; ++t) sum += (sc[t] = std::exp(sc[t] - mx));
        float* o = out + h * hd_;
        std::fill(o, o + hd_, 0.f);
        for (int64_t t = 0; t < n; ++t) {
          const float w = sc[t] / sum;
          const float* vt = vh + t * hd_;
          for (int64_t j = 0; j < hd_; ++j) o[j] += w * vt[j];
        }
      }
    });
  }

  std::vector<Layer> layers_;
  int64_t n_heads_, n_kv_, hd_, hidden_;
  float eps_;
  torch::Tensor embed_, norm_, head_q_, head_d_, head_w_;
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  m.def("q4_1_gemv", &q4_1_gemv, "Q4_1 groups x float32 vector");
  m.def("q8_0_gemv", &q8_0_gemv, "Q8_0 groups x float32 vector");
  py::class_<Q4Decoder>(m, "Q4Decoder")
      .def(py::init<int64_t, int64_t, int64_t, int64_t, double, torch::Tensor, torch::Tensor>())
      .def("set_layer", &Q4Decoder::set_layer)
      .def("set_proj", &Q4Decoder::set_proj)
      .def("set_lora", &Q4Decoder::set_lora)
      .def("set_cache", &Q4Decoder::set_cache)
      .def("set_head_q8", &Q4Decoder::set_head_q8)
      .def("set_head_float", &Q4Decoder::set_head_float)
      .def("step", &Q4Decoder::step, py::call_guard<py::gil_scoped_release>());
}
