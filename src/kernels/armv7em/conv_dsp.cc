// The armv7em-dsp convolutions (see armv7em.h). Every output is the reference's int32 sum
// acc = sum (x - z_x) * w, computed exactly modulo 2^32 (docs/kernels.md, "armv7em"), then
// requantize()'s value through Requantizer (requant_dsp.h). Int8 data is widened to int16 pairs with SXTB16:
// from a word of 4 bytes b0 b1 b2 b3, SXTB16 gives the pair (b0, b2) and SXTB16 ROR #8 the pair (b1, b3).
// Weights and inputs are widened the same way, so their pairs line up and SMLAD adds two products at once.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/armv7em/acle_compat.h"
#include "kernels/armv7em/armv7em.h"
#include "kernels/armv7em/requant_dsp.h"

#if defined(__GNUC__)
#define TZ_ARMV7EM_INLINE inline __attribute__((always_inline))
#define TZ_ARMV7EM_NOINLINE __attribute__((noinline, noclone))
#else
#define TZ_ARMV7EM_INLINE inline
#define TZ_ARMV7EM_NOINLINE
#endif

namespace tinyzo::armv7em {
namespace {

using dsp::load_u32;
using dsp::sxtb16;
using dsp::sxtb16_ror8;

// Two's-complement arithmetic modulo 2^32, without signed-overflow UB.
TZ_ARMV7EM_INLINE int32_t wrap_add(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
TZ_ARMV7EM_INLINE int32_t wrap_mul(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b));
}

// Requantization: each kernel body is a template over the rule (requant_dsp.h): FloatScaleRule
// (requantize() bit for bit, with VCVTR rounding) or FixedPointRule (requantize_fixed()).
// Each body is its own (noinline) function that constructs its rule as a local from (p, mult):
// both bodies inlined into one entry point, with the rule passed by reference, cost the float-scale
// forward 73.5 M instead of 69.2 M instructions on the M7 (GCC allocated registers for the two
// bodies together and reloaded the rule's constants; scripts/fw_cost.sh, docs/kernels.md). A rule
// whose address is taken (passed on by reference) is no longer a plain local either: helpers that
// need one (dw_scalar) construct their own.

// The fixed-point rule by runs of output channels: run(fast, begin, end) for maximal runs of whole
// groups of `group` channels (the kernel's channel block; the last group may be shorter), with
// fast when every channel of the run meets FixedPointFastRule's precondition for sums of at most
// k products. A dead channel (a saturated bias, as quantized models have) then costs only its own
// group the general rule.
template <class Run>
void fixed_point_runs(const ConvParams& p, const int32_t* bias, int k, int group, Run&& run) {
  const int64_t acc_max = FixedPointFastRule::acc_bound(p, k);
  const int n = p.out_c;
  int begin = 0;
  bool begin_fast = false;
  for (int g = 0; g < n; g += group) {
    const int g_end = g + group < n ? g + group : n;
    bool fast = acc_max >= 0;
    for (int o = g; fast && o < g_end; ++o) fast = FixedPointFastRule::channel_ok(p, bias, acc_max, o);
    if (g == 0) {
      begin_fast = fast;
    } else if (fast != begin_fast) {
      run(begin_fast, begin, g);
      begin = g, begin_fast = fast;
    }
  }
  if (n > 0) run(begin_fast, begin, n);
}

// ---------------------------------------------------------------------------------------------
// Pointwise: out[s][o] = sum_c (x[s][c] - z) w[o][c]. The zero point is folded into the
// accumulator's start: sum (x - z) w = sum x w - z sum w (exact modulo 2^32), with sum w computed
// once per output channel per call. So the inner loop reads raw int8 input, 2 pixels x 2 output
// channels per step of 4 input channels: 4 loads, 8 SXTB16, 8 SMLAD for 16 MACs.

// sum_c w[c] for c < n.
int32_t row_sum(const int8_t* w, int n) {
  int32_t s = 0;
  int c = 0;
  constexpr uint32_t kOnes = 0x00010001u;
  for (; c + 4 <= n; c += 4) {
    const uint32_t v = load_u32(w + c);
    s = dsp::smlad(sxtb16(v), kOnes, s);
    s = dsp::smlad(sxtb16_ror8(v), kOnes, s);
  }
  for (; c < n; ++c) s += w[c];
  return s;
}

// -z * sum w, modulo 2^32: the accumulator's start for an output channel.
TZ_ARMV7EM_INLINE int32_t zero_point_start(int32_t x_zero, const int8_t* w, int n) {
  return wrap_mul(-x_zero, row_sum(w, n));
}

// 4 values of 2 pixels times the 4 int8 weights at w0 and at w1: a_ij += pixel i . weights j.
// xil / xih are pixel i's halfword pairs that meet the weights' sxtb16 (bytes 0, 2) / sxtb16_ror8
// (bytes 1, 3) halves.
TZ_ARMV7EM_INLINE void smlad_2x2(uint32_t x0l, uint32_t x0h, uint32_t x1l, uint32_t x1h, const int8_t* w0,
                                 const int8_t* w1, int32_t& a00, int32_t& a01, int32_t& a10, int32_t& a11) {
  uint32_t wv = load_u32(w0);
  uint32_t wl = sxtb16(wv), wh = sxtb16_ror8(wv);
  a00 = dsp::smlad(x0l, wl, a00);
  a00 = dsp::smlad(x0h, wh, a00);
  a10 = dsp::smlad(x1l, wl, a10);
  a10 = dsp::smlad(x1h, wh, a10);
  wv = load_u32(w1);
  wl = sxtb16(wv), wh = sxtb16_ror8(wv);
  a01 = dsp::smlad(x0l, wl, a01);
  a01 = dsp::smlad(x0h, wh, a01);
  a11 = dsp::smlad(x1l, wl, a11);
  a11 = dsp::smlad(x1h, wh, a11);
}

// One step of mac_2x2: 4 input channels of 2 pixels x 2 output channels.
TZ_ARMV7EM_INLINE void mac_2x2_step(const int8_t* x, const int8_t* w, ptrdiff_t stride, int32_t& a00,
                                    int32_t& a01, int32_t& a10, int32_t& a11) {
  const uint32_t xv0 = load_u32(x), xv1 = load_u32(x + stride);
  smlad_2x2(sxtb16(xv0), sxtb16_ror8(xv0), sxtb16(xv1), sxtb16_ror8(xv1), w, w + stride, a00, a01, a10, a11);
}

// a[i][j] += sum_{c < n} x_i[c] * w_j[c] for pixels x_0 = x, x_1 = x + stride and channels
// w_0 = w, w_1 = w + stride; n a multiple of 4. Two steps per iteration: the loop's end pointer
// lives on the stack (all 14 registers are taken), so its reload is shared by 32 MACs.
TZ_ARMV7EM_INLINE void mac_2x2(const int8_t* x, const int8_t* w, ptrdiff_t stride, int n, int32_t& a00,
                               int32_t& a01, int32_t& a10, int32_t& a11) {
  const int8_t* const x_end8 = x + (n & ~7);
  while (x != x_end8) {
    mac_2x2_step(x, w, stride, a00, a01, a10, a11);
    mac_2x2_step(x + 4, w + 4, stride, a00, a01, a10, a11);
    x += 8;
    w += 8;
  }
  if (n & 4) mac_2x2_step(x, w, stride, a00, a01, a10, a11);
}

// a0 += x . w_0, a1 += x . w_1 (w_1 = w + stride); n a multiple of 4. With x and w swapped
// this is also 2 pixels x 1 channel.
TZ_ARMV7EM_INLINE void mac_1x2(const int8_t* x, const int8_t* w, ptrdiff_t stride, int n, int32_t& a0,
                               int32_t& a1) {
  const int8_t* const x_end = x + n;
  while (x != x_end) {
    const uint32_t xv = load_u32(x);
    const uint32_t xl = sxtb16(xv), xh = sxtb16_ror8(xv);
    const uint32_t wv0 = load_u32(w), wv1 = load_u32(w + stride);
    a0 = dsp::smlad(xl, sxtb16(wv0), a0);
    a0 = dsp::smlad(xh, sxtb16_ror8(wv0), a0);
    a1 = dsp::smlad(xl, sxtb16(wv1), a1);
    a1 = dsp::smlad(xh, sxtb16_ror8(wv1), a1);
    x += 4;
    w += 4;
  }
}

TZ_ARMV7EM_INLINE int32_t mac_1x1(const int8_t* x, const int8_t* w, int n, int32_t a) {
  const int8_t* const x_end = x + n;
  while (x != x_end) {
    const uint32_t xv = load_u32(x), wv = load_u32(w);
    a = dsp::smlad(sxtb16(xv), sxtb16(wv), a);
    a = dsp::smlad(sxtb16_ror8(xv), sxtb16_ror8(wv), a);
    x += 4;
    w += 4;
  }
  return a;
}

// The channels n4 <= c < n of one product (at most 3), scalar.
TZ_ARMV7EM_INLINE int32_t mac_tail(const int8_t* x, const int8_t* w, int n4, int n, int32_t a) {
  for (int c = n4; c < n; ++c) a = wrap_add(a, int32_t(x[c]) * int32_t(w[c]));
  return a;
}

}  // namespace

namespace {

template <class Rule>
TZ_ARMV7EM_NOINLINE void pointwise_impl(const ConvParams& p, const int8_t* x, const int8_t* w,
                                        const int32_t* bias, const float* mult, int8_t* y, int o_begin,
                                        int o_end) {
  const Rule rq(p, mult);                                 // a local: int8 stores cannot alias its constants
  if (!Rule::kChannelRuns) o_begin = 0, o_end = p.out_c;  // the float rule's code as it was
  const int cin = p.in_c, cout = p.out_c;
  const int n4 = cin & ~3;
  const int hw = p.out_h * p.out_w;
  const ptrdiff_t xs = cin, ys = cout;
  int o = o_begin;
  for (; o + 2 <= o_end; o += 2) {
    const int8_t* w0 = w + static_cast<size_t>(o) * cin;
    const int8_t* w1 = w0 + cin;
    const int32_t s0 = zero_point_start(p.x_zero, w0, cin), s1 = zero_point_start(p.x_zero, w1, cin);
    const int32_t b0 = bias[o], b1 = bias[o + 1];
    const auto m0 = rq.channel(o), m1 = rq.channel(o + 1);
    const int8_t* x0 = x;
    int8_t* yo = y + o;
    int s = 0;
    for (; s + 2 <= hw; s += 2, x0 += 2 * xs, yo += 2 * ys) {
      int32_t a00 = s0, a01 = s1, a10 = s0, a11 = s1;
      mac_2x2(x0, w0, xs, n4, a00, a01, a10, a11);
      if (n4 != cin) {
        const int8_t* x1 = x0 + xs;
        a00 = mac_tail(x0, w0, n4, cin, a00);
        a01 = mac_tail(x0, w1, n4, cin, a01);
        a10 = mac_tail(x1, w0, n4, cin, a10);
        a11 = mac_tail(x1, w1, n4, cin, a11);
      }
      yo[0] = rq(a00, b0, m0);
      yo[1] = rq(a01, b1, m1);
      yo[ys] = rq(a10, b0, m0);
      yo[ys + 1] = rq(a11, b1, m1);
    }
    if (s < hw) {  // odd pixel count: the last pixel, 2 channels
      int32_t a0 = s0, a1 = s1;
      mac_1x2(x0, w0, xs, n4, a0, a1);
      a0 = mac_tail(x0, w0, n4, cin, a0);
      a1 = mac_tail(x0, w1, n4, cin, a1);
      yo[0] = rq(a0, b0, m0);
      yo[1] = rq(a1, b1, m1);
    }
  }
  if (o < o_end) {  // odd channel count: the last channel, 2 pixels at a time
    const int8_t* w0 = w + static_cast<size_t>(o) * cin;
    const int32_t s0 = zero_point_start(p.x_zero, w0, cin);
    const int32_t b0 = bias[o];
    const auto m0 = rq.channel(o);
    const int8_t* x0 = x;
    int8_t* yo = y + o;
    int s = 0;
    for (; s + 2 <= hw; s += 2, x0 += 2 * xs, yo += 2 * ys) {
      int32_t a0 = s0, a1 = s0;
      mac_1x2(w0, x0, xs, n4, a0, a1);  // one weight row against two pixels
      a0 = mac_tail(x0, w0, n4, cin, a0);
      a1 = mac_tail(x0 + xs, w0, n4, cin, a1);
      yo[0] = rq(a0, b0, m0);
      yo[ys] = rq(a1, b0, m0);
    }
    if (s < hw) yo[0] = rq(mac_tail(x0, w0, n4, cin, mac_1x1(x0, w0, n4, s0)), b0, m0);
  }
}

}  // namespace

void pointwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y) {
  if (p.fx_multiplier == nullptr) {
    pointwise_impl<FloatScaleRule>(p, x, w, bias, mult, y, 0, p.out_c);
    return;
  }
  fixed_point_runs(p, bias, p.in_c, 2, [&](bool fast, int begin, int end) {
    if (fast)
      pointwise_impl<FixedPointFastRule>(p, x, w, bias, mult, y, begin, end);
    else
      pointwise_impl<FixedPointRule>(p, x, w, bias, mult, y, begin, end);
  });
}

// ---------------------------------------------------------------------------------------------
// Depthwise: 4 channels per step. A word of input holds channels c..c+3 of one pixel; SXTB16
// gives (c, c+2) and (c+1, c+3). The block's weights are packed once on the stack as the same
// pairs, per tap: [tap][(w_c, w_c+2), (w_c+1, w_c+3)], and SMLABB / SMLATT multiply the matching
// halves into 4 accumulators: 1 load, 2 SXTB16, 2 weight loads, 4 MACs per tap.
//
// Zero point: the accumulators start at -z * sum w over the taps inside the image. For pixels
// whose window lies inside the image that is the block's full sum, computed once; for border
// pixels the loop sums the weights of the taps it visits (SADD16 on the packed pairs: at most 49
// taps of |w| <= 128, so each int16 lane is exact).

namespace {

struct Acc4 {
  int32_t a0, a1, a2, a3;  // channels c, c+1, c+2, c+3
};

// Adds the taps [ky0, ky1) x [kx0, kx1) of one output pixel. xw: the input word of tap (ky0, kx0);
// row: bytes between input rows; col: bytes between input pixels (= C). kBorder: also returns the
// sums of the visited weights, as pairs (w_c, w_c+2) in *sa and (w_c+1, w_c+3) in *sb.
template <bool kBorder>
TZ_ARMV7EM_INLINE void dw_taps(const int8_t* xw, ptrdiff_t row, ptrdiff_t col, const uint32_t* wt, int kw,
                               int ky0, int ky1, int kx0, int kx1, Acc4& a, uint32_t* sa, uint32_t* sb) {
  uint32_t ssa = 0, ssb = 0;
  const int n = kx1 - kx0;
  for (int ky = ky0; ky < ky1; ++ky, xw += row) {
    const uint32_t* wp = wt + 2 * (ky * kw + kx0);
    const int8_t* xp = xw;
    for (int i = 0; i < n; ++i, xp += col, wp += 2) {
      const uint32_t xv = load_u32(xp);
      const uint32_t xl = sxtb16(xv), xh = sxtb16_ror8(xv);
      const uint32_t wa = wp[0], wb = wp[1];
      a.a0 = dsp::smlabb(xl, wa, a.a0);
      a.a2 = dsp::smlatt(xl, wa, a.a2);
      a.a1 = dsp::smlabb(xh, wb, a.a1);
      a.a3 = dsp::smlatt(xh, wb, a.a3);
      if (kBorder) {
        ssa = dsp::sadd16(ssa, wa);
        ssb = dsp::sadd16(ssb, wb);
      }
    }
  }
  if (kBorder) *sa = ssa, *sb = ssb;
}

// dw_taps<false> over a whole kh x kKw window, the kernel row unrolled (3x3, 5x5 and 7x7 are
// MCUNet's): per tap 1 input load, 1 LDRD of weights, 2 SXTB16, 4 MACs, 1 pointer add.
template <int kKw>
TZ_ARMV7EM_INLINE void dw_taps_full(const int8_t* xw, ptrdiff_t row, ptrdiff_t col, const uint32_t* wt,
                                    int kh, Acc4& a) {
  for (int ky = 0; ky < kh; ++ky, xw += row, wt += 2 * kKw) {
    const int8_t* xp = xw;
#pragma GCC unroll 8
    for (int kx = 0; kx < kKw; ++kx, xp += col) {
      const uint32_t xv = load_u32(xp);
      const uint32_t xl = sxtb16(xv), xh = sxtb16_ror8(xv);
      const uint32_t wa = wt[2 * kx], wb = wt[2 * kx + 1];
      a.a0 = dsp::smlabb(xl, wa, a.a0);
      a.a2 = dsp::smlatt(xl, wa, a.a2);
      a.a1 = dsp::smlabb(xh, wb, a.a1);
      a.a3 = dsp::smlatt(xh, wb, a.a3);
    }
  }
}

// The channels [c0, c1) of every output pixel, one at a time, in the reference's order.
template <class Rule>
void dw_scalar(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, const float* mult,
               int8_t* y, int c0, int c1) {
  const Rule rq(p, mult);
  const int cn = p.out_c;
  for (int oy = 0; oy < p.out_h; ++oy)
    for (int ox = 0; ox < p.out_w; ++ox)
      for (int c = c0; c < c1; ++c) {
        int32_t acc = 0;
        for (int ky = 0; ky < p.kh; ++ky) {
          const int iy = oy * p.stride_h - p.pad_top + ky;
          if (iy < 0 || iy >= p.in_h) continue;
          for (int kx = 0; kx < p.kw; ++kx) {
            const int ix = ox * p.stride_w - p.pad_left + kx;
            if (ix < 0 || ix >= p.in_w) continue;
            const int32_t xv = x[(static_cast<size_t>(iy) * p.in_w + ix) * cn + c];
            acc = wrap_add(acc, wrap_mul(xv - p.x_zero, w[(c * p.kh + ky) * p.kw + kx]));
          }
        }
        y[(static_cast<size_t>(oy) * p.out_w + ox) * cn + c] = rq(acc, bias[c], rq.channel(c));
      }
}

TZ_ARMV7EM_INLINE int max_i(int a, int b) { return a > b ? a : b; }
TZ_ARMV7EM_INLINE int min_i(int a, int b) { return a < b ? a : b; }

// The output pixels of the channel block [c, c + 4) of depthwise_impl, for kernel width kKw
// (3, 5, 7 unrolled; 0: any width). A template so that the width is chosen once per block.
template <int kKw, class Rule, class Ch>
TZ_ARMV7EM_INLINE void dw_pixels(const ConvParams& p, const int8_t* x, const uint32_t* wt, const Acc4& full,
                                 int c, int32_t nz, const Rule& rq, int32_t b0, int32_t b1, int32_t b2,
                                 int32_t b3, Ch m0, Ch m1, Ch m2, Ch m3, int8_t* yp) {
  const int kh = p.kh, kw = kKw != 0 ? kKw : p.kw;
  const int cn = p.out_c;
  const ptrdiff_t col = cn, row = static_cast<ptrdiff_t>(p.in_w) * cn;
  for (int oy = 0; oy < p.out_h; ++oy) {
    const int iy0 = oy * p.stride_h - p.pad_top;
    const int ky0 = max_i(0, -iy0), ky1 = min_i(kh, p.in_h - iy0);
    for (int ox = 0; ox < p.out_w; ++ox, yp += cn) {
      const int ix0 = ox * p.stride_w - p.pad_left;
      const int kx0 = max_i(0, -ix0), kx1 = min_i(kw, p.in_w - ix0);
      const int8_t* xw = x + ((static_cast<ptrdiff_t>(iy0) + ky0) * p.in_w + ix0 + kx0) * cn + c;
      Acc4 a;
      if (ky0 == 0 && ky1 == kh && kx0 == 0 && kx1 == kw) {
        a = full;
        if (kKw != 0)
          dw_taps_full<kKw != 0 ? kKw : 1>(xw, row, col, wt, kh, a);
        else
          dw_taps<false>(xw, row, col, wt, kw, 0, kh, 0, kw, a, nullptr, nullptr);
      } else {
        a = {0, 0, 0, 0};
        uint32_t sa = 0, sb = 0;
        if (ky0 < ky1 && kx0 < kx1) dw_taps<true>(xw, row, col, wt, kw, ky0, ky1, kx0, kx1, a, &sa, &sb);
        a.a0 = wrap_add(a.a0, wrap_mul(nz, dsp::pair_lo(sa)));
        a.a2 = wrap_add(a.a2, wrap_mul(nz, dsp::pair_hi(sa)));
        a.a1 = wrap_add(a.a1, wrap_mul(nz, dsp::pair_lo(sb)));
        a.a3 = wrap_add(a.a3, wrap_mul(nz, dsp::pair_hi(sb)));
      }
      yp[0] = rq(a.a0, b0, m0);
      yp[1] = rq(a.a1, b1, m1);
      yp[2] = rq(a.a2, b2, m2);
      yp[3] = rq(a.a3, b3, m3);
    }
  }
}

template <class Rule>
TZ_ARMV7EM_NOINLINE void depthwise_impl(const ConvParams& p, const int8_t* x, const int8_t* w,
                                        const int32_t* bias, const float* mult, int8_t* y, int c_begin,
                                        int c_end) {
  const Rule rq(p, mult);                                 // a local: int8 stores cannot alias its constants
  if (!Rule::kChannelRuns) c_begin = 0, c_end = p.out_c;  // the float rule's code as it was
  const int kh = p.kh, kw = p.kw, taps = kh * kw;
  const int c4 = c_begin + ((c_end - c_begin) & ~3);  // c_begin is a multiple of 4
  const int32_t nz = -p.x_zero;
  alignas(8) uint32_t wt[2 * kDepthwiseMaxTaps];
  for (int c = c_begin; c < c4; c += 4) {
    const int8_t* wc = w + static_cast<size_t>(c) * taps;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int t = 0; t < taps; ++t) {
      const int32_t w0 = wc[t], w1 = wc[taps + t], w2 = wc[2 * taps + t], w3 = wc[3 * taps + t];
      wt[2 * t] = dsp::pack16(w0, w2);
      wt[2 * t + 1] = dsp::pack16(w1, w3);
      s0 += w0, s1 += w1, s2 += w2, s3 += w3;
    }
    const Acc4 full = {wrap_mul(nz, s0), wrap_mul(nz, s1), wrap_mul(nz, s2), wrap_mul(nz, s3)};
    const int32_t b0 = bias[c], b1 = bias[c + 1], b2 = bias[c + 2], b3 = bias[c + 3];
    const auto m0 = rq.channel(c), m1 = rq.channel(c + 1), m2 = rq.channel(c + 2), m3 = rq.channel(c + 3);
    int8_t* yp = y + c;
    switch (kw) {  // once per block: the pixel loops for the kernel width
      case 3:
        dw_pixels<3>(p, x, wt, full, c, nz, rq, b0, b1, b2, b3, m0, m1, m2, m3, yp);
        break;
      case 5:
        dw_pixels<5>(p, x, wt, full, c, nz, rq, b0, b1, b2, b3, m0, m1, m2, m3, yp);
        break;
      case 7:
        dw_pixels<7>(p, x, wt, full, c, nz, rq, b0, b1, b2, b3, m0, m1, m2, m3, yp);
        break;
      default:
        dw_pixels<0>(p, x, wt, full, c, nz, rq, b0, b1, b2, b3, m0, m1, m2, m3, yp);
    }
  }
  if (c4 < c_end) dw_scalar<Rule>(p, x, w, bias, mult, y, c4, c_end);
}

}  // namespace

void depthwise_conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                         const float* mult, int8_t* y) {
  if (p.kh * p.kw > kDepthwiseMaxTaps) {
    ref::depthwise_conv2d_s8(p, x, w, bias, mult, y);
    return;
  }
  if (p.fx_multiplier == nullptr) {
    depthwise_impl<FloatScaleRule>(p, x, w, bias, mult, y, 0, p.out_c);
    return;
  }
  fixed_point_runs(p, bias, p.kh * p.kw, 4, [&](bool fast, int begin, int end) {
    if (fast)
      depthwise_impl<FixedPointFastRule>(p, x, w, bias, mult, y, begin, end);
    else
      depthwise_impl<FixedPointRule>(p, x, w, bias, mult, y, begin, end);
  });
}

// ---------------------------------------------------------------------------------------------
// General convolution (the 3x3 stride-2 stem, grouped convs): im2col. For 2 output pixels the
// group's window (kh * kw * C_in/groups = K values) is staged on the stack as int16 x - z, with
// padding taps 0, zero-padded to a multiple of 4, and each group of 4 stored as the pairs
// (v0, v2), (v1, v3) that SXTB16 makes of a weight word. Then 2 pixels x 2 output channels per
// step of 4: 4 loads of staged pairs, 2 weight loads, 4 SXTB16, 8 SMLAD. A weight row's last
// partial word is assembled from bytes (never reading past the row).
//
// Staging is two passes: the window's raw bytes in k order (a kernel row of a group-1 conv is one
// contiguous run of kw * C_in bytes; padding taps get the byte z, which becomes 0), then 4 bytes at
// a time SXTB16 / SXTB16 ROR #8 and SSUB16 of (z, z) give the two pairs. Hence z must fit int8.

namespace {

// n bytes of word (all 4 bytes equal) / copied from s. Words, then a halfword and a byte: no byte
// loop, which GCC would turn into a memset / memcpy call.
TZ_ARMV7EM_INLINE void fill_bytes(uint8_t* d, uint32_t word, int n) {
  for (; n >= 4; n -= 4, d += 4) dsp::store_u32(d, word);
  if (n & 2) {
    const uint16_t h = static_cast<uint16_t>(word);
    std::memcpy(d, &h, 2);
    d += 2;
  }
  if (n & 1) *d = static_cast<uint8_t>(word);
}
TZ_ARMV7EM_INLINE void copy_bytes(uint8_t* d, const int8_t* s, int n) {
  for (; n >= 4; n -= 4, d += 4, s += 4) dsp::store_u32(d, load_u32(s));
  if (n & 2) {
    std::memcpy(d, s, 2);
    d += 2, s += 2;
  }
  if (n & 1) *d = static_cast<uint8_t>(*s);
}

// Stages the window of output pixel (oy, ox), group channels [ci0, ci0 + cig), into col[0, k4)
// (K = kh * kw * cig values, then zeros up to k4). -128 <= p.x_zero <= 127.
void stage_window(const ConvParams& p, const int8_t* x, int oy, int ox, int ci0, int cig, int k4,
                  int16_t* col) {
  // Pass 1: the raw bytes into the upper half of the row's bytes, [k4, 2 k4).
  uint8_t* const raw = reinterpret_cast<uint8_t*>(col) + k4;
  const uint32_t zw = 0x01010101u * static_cast<uint8_t>(p.x_zero);
  const int iy0 = oy * p.stride_h - p.pad_top, ix0 = ox * p.stride_w - p.pad_left;
  const int kx0 = min_i(p.kw, max_i(0, -ix0));  // the valid taps of a kernel row: [kx0, kx1)
  const int kx1 = max_i(kx0, min_i(p.kw, p.in_w - ix0));
  const int row = p.kw * cig, lead = kx0 * cig, body = (kx1 - kx0) * cig, trail = row - lead - body;
  uint8_t* d = raw;
  for (int ky = 0; ky < p.kh; ++ky, d += row) {
    const int iy = iy0 + ky;
    if (iy < 0 || iy >= p.in_h) {
      fill_bytes(d, zw, row);
      continue;
    }
    fill_bytes(d, zw, lead);
    const int8_t* xp = x + (static_cast<ptrdiff_t>(iy) * p.in_w + ix0 + kx0) * p.in_c + ci0;
    if (cig == p.in_c) {
      copy_bytes(d + lead, xp, body);  // the valid pixels' channels are contiguous
    } else {
      for (int kx = kx0; kx < kx1; ++kx, xp += p.in_c) copy_bytes(d + lead + (kx - kx0) * cig, xp, cig);
    }
    fill_bytes(d + lead + body, zw, trail);
  }
  fill_bytes(d, zw, k4 - p.kh * row);  // [K, k4): any value (the weights there are 0)
  // Pass 2, in place: group i reads raw bytes [k4 + 4i, +4) and writes col bytes [8i, +8), which
  // lie below every raw byte not yet read (8i + 8 <= k4 + 4i + 4 because 4i + 4 <= k4).
  const uint32_t zz = dsp::pack16(p.x_zero, p.x_zero);
  for (int k = 0; k < k4; k += 4) {
    const uint32_t v = load_u32(raw + k);
    dsp::store_u32(col + k, dsp::ssub16(sxtb16(v), zz));  // |x - z| <= 255: exact in int16
    dsp::store_u32(col + k + 2, dsp::ssub16(sxtb16_ror8(v), zz));
  }
}

// The last word of a weight row whose length k is not a multiple of 4: its k % 4 bytes, then 0.
TZ_ARMV7EM_INLINE uint32_t last_word(const int8_t* w, int k4, int k) {
  uint32_t v = 0;
  for (int i = k4 - 4; i < k; ++i)
    v |= static_cast<uint32_t>(static_cast<uint8_t>(w[i])) << (8 * (i - (k4 - 4)));
  return v;
}

// a_ij += staged pixel i . weight row j, over n (a multiple of 4) values.
TZ_ARMV7EM_INLINE void mac_col_2x2(const int16_t* c0, const int16_t* c1, const int8_t* w0, const int8_t* w1,
                                   int n, int32_t& a00, int32_t& a01, int32_t& a10, int32_t& a11) {
  for (int k = 0; k < n; k += 4)
    smlad_2x2(load_u32(c0 + k), load_u32(c0 + k + 2), load_u32(c1 + k), load_u32(c1 + k + 2), w0 + k, w1 + k,
              a00, a01, a10, a11);
}

// a_i += staged pixel i . the word wv (4 weights).
TZ_ARMV7EM_INLINE void mac_col_word(const int16_t* c0, const int16_t* c1, uint32_t wv, int32_t& a0,
                                    int32_t& a1) {
  const uint32_t wl = sxtb16(wv), wh = sxtb16_ror8(wv);
  a0 = dsp::smlad(load_u32(c0), wl, a0);
  a0 = dsp::smlad(load_u32(c0 + 2), wh, a0);
  a1 = dsp::smlad(load_u32(c1), wl, a1);
  a1 = dsp::smlad(load_u32(c1 + 2), wh, a1);
}

}  // namespace

namespace {

// The im2col path of conv2d_s8 (k4 <= kConvMaxReduction, int8 zero point).
template <class Rule>
TZ_ARMV7EM_NOINLINE void conv_impl(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias,
                                   const float* mult, int8_t* y) {
  const Rule rq(p, mult);  // a local: int8 stores cannot alias its constants
  const int cig = p.in_c / p.groups, cog = p.out_c / p.groups;
  const int k = p.kh * p.kw * cig;
  const int k4 = (k + 3) & ~3;
  const int kf = k & ~3;  // whole weight words; the word at [kf, k4) is assembled
  const int hw = p.out_h * p.out_w;
  const ptrdiff_t ys = p.out_c;
  alignas(8) int16_t col[2][kConvMaxReduction];
  for (int g = 0; g < p.groups; ++g) {
    const int ci0 = g * cig, co0 = g * cog;
    for (int s = 0; s < hw; s += 2) {
      const bool two = s + 1 < hw;
      stage_window(p, x, s / p.out_w, s % p.out_w, ci0, cig, k4, col[0]);
      if (two) stage_window(p, x, (s + 1) / p.out_w, (s + 1) % p.out_w, ci0, cig, k4, col[1]);
      // With one pixel left, the second row repeats the first; its outputs are not stored.
      const int16_t* c1 = two ? col[1] : col[0];
      int8_t* y0 = y + static_cast<ptrdiff_t>(s) * ys;
      int o = co0;
      for (; o < co0 + cog; o += 2) {
        const bool pair = o + 1 < co0 + cog;
        const int8_t* w0 = w + static_cast<size_t>(o) * k;
        const int8_t* w1 = pair ? w0 + k : w0;
        int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
        mac_col_2x2(col[0], c1, w0, w1, kf, a00, a01, a10, a11);
        if (kf != k) {
          mac_col_word(col[0] + kf, c1 + kf, last_word(w0, k4, k), a00, a10);
          mac_col_word(col[0] + kf, c1 + kf, last_word(w1, k4, k), a01, a11);
        }
        y0[o] = rq(a00, bias[o], rq.channel(o));
        if (pair) y0[o + 1] = rq(a01, bias[o + 1], rq.channel(o + 1));
        if (two) {
          y0[ys + o] = rq(a10, bias[o], rq.channel(o));
          if (pair) y0[ys + o + 1] = rq(a11, bias[o + 1], rq.channel(o + 1));
        }
      }
    }
  }
}

}  // namespace

void conv2d_s8(const ConvParams& p, const int8_t* x, const int8_t* w, const int32_t* bias, const float* mult,
               int8_t* y) {
  if (p.groups == p.in_c && p.groups == p.out_c) {  // depthwise: the same sums as ref::conv2d_s8
    depthwise_conv2d_s8(p, x, w, bias, mult, y);
    return;
  }
  if (p.groups == 1 && p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
      p.pad_left == 0 && p.out_h == p.in_h && p.out_w == p.in_w) {
    pointwise_conv2d_s8(p, x, w, bias, mult, y);
    return;
  }
  const int k = p.kh * p.kw * (p.in_c / p.groups);
  const int k4 = (k + 3) & ~3;
  // Staging pads with the byte z (an int8 zero point, as every model has).
  if (k4 > kConvMaxReduction || p.x_zero < -128 || p.x_zero > 127) {
    ref::conv2d_s8(p, x, w, bias, mult, y);
    return;
  }
  if (p.fx_multiplier != nullptr && FixedPointFastRule::applies(p, bias, k))
    conv_impl<FixedPointFastRule>(p, x, w, bias, mult, y);
  else if (p.fx_multiplier != nullptr)
    conv_impl<FixedPointRule>(p, x, w, bias, mult, y);
  else
    conv_impl<FloatScaleRule>(p, x, w, bias, mult, y);
}

const KernelTable& table() {
  static const KernelTable kTable = {"armv7em-dsp",        conv2d_s8,          depthwise_conv2d_s8,
                                     pointwise_conv2d_s8,  ref::add_s8,        ref::global_avg_pool_s8,
                                     ref::max_pool2d_s8,   ref::avg_pool2d_s8, ref::linear_f32,
                                     TZ_REF_TFLITE_KERNELS};
  return kTable;
}

}  // namespace tinyzo::armv7em
