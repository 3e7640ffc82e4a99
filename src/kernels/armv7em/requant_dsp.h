// The armv7em kernels' requantization: for every input exactly the value of the shared
// requantize() (requant.h), computed with VCVTR.S32.F32 rounding and one integer clamp instead of
// round_half_even's range checks, compare-and-branch rounding and second clamp.
//
// requantize():  v = ((f32(acc) + f32(bias)) * mult) / y_scale
//                y = clamp_i32(sat(rne(v)) + y_zero, lo, hi)      sat: to [-2^30, 2^30], NaN -> 0
// here:          the same v (the same binary32 operations in the same order, VDIV included), then
//                r = VCVTR(v), which is rne(v) for |v| < 2^31 in the RN mode, saturates beyond and
//                gives 0 for NaN, so sat(r) = round_half_even(v) for every v, NaN and infinities
//                included (the clamp of r to +-2^30 undoes the wider saturation);
//   clamp form:  y = clamp(r, lo - y_zero, hi - y_zero) + y_zero, when lo <= hi and |y_zero|,
//                |lo|, |hi| <= 2^29 (every real model: int8 values). The bounds then lie inside
//                [-2^30, 2^30], where sat is the identity, and sat is monotone, so
//                clamp(sat(r), a, b) = clamp(r, a, b); clamp(q + z, lo, hi) = clamp(q, lo - z,
//                hi - z) + z without overflow. One clamp replaces sat + clamp.
//   long form:   otherwise (lo > hi, where clamp_i32 returns lo below lo and hi elsewhere, or huge
//                zero points): sat(r) + y_zero, then clamp_i32 itself.
// NaN needs no case of its own: it gives r = 0 = round_half_even(NaN) in both forms. It can only
// come from NaN/infinite parameters (0/0, inf/inf, 0*inf): the accumulator and bias are finite.
//
// The rounding mode: VCVTR rounds in FPSCR.RMode, which must be RN (round to nearest even). It is
// at reset (and FPDSCR's default for new FP contexts is RN too); the firmware never changes it, and
// its kernel-test checks it. The reference's own float add, multiply and divide round in that mode
// as well, so RN is required for host == device anyway. On the host, dsp::vcvtr_s32_f32 is an exact
// C model of the instruction in the RN mode.
#pragma once
#include <cstdint>

#include "kernels/armv7em/acle_compat.h"
#include "tinyzo/kernels/kernels.h"
#include "tinyzo/kernels/requant.h"

namespace tinyzo::armv7em {

// The requantization constants of one call, held in locals so that int8 stores (which may alias
// anything) do not force them to be reloaded, and the form chosen once per call.
class Requantizer {
 public:
  static constexpr int32_t kClampFormLimit = 1 << 29;  // |y_zero|, |lo|, |hi| for the clamp form

  Requantizer(float y_scale, int32_t y_zero, int32_t lo, int32_t hi)
      : y_scale_(y_scale),
        y_zero_(y_zero),
        lo_(lo),
        hi_(hi),
        r_lo_(wrap_sub(lo, y_zero)),  // exact when the clamp form is taken
        r_hi_(wrap_sub(hi, y_zero)),
        clamp_form_(lo <= hi && within(y_zero) && within(lo) && within(hi)) {}
  explicit Requantizer(const ConvParams& p) : Requantizer(p.y_scale, p.y_zero, p.act_min, p.act_max) {}

  // requantize(acc, bias, mult, y_scale, y_zero, lo, hi), bit for bit.
  int8_t operator()(int32_t acc, int32_t bias, float mult) const {
    float v = (static_cast<float>(acc) + static_cast<float>(bias)) * mult;
    v = v / y_scale_;
    int32_t r = dsp::vcvtr_s32_f32(v);
    if (clamp_form_) {
      r = r < r_lo_ ? r_lo_ : (r > r_hi_ ? r_hi_ : r);
      return static_cast<int8_t>(r + y_zero_);
    }
    constexpr int32_t kSat = 1 << 30;
    r = r < -kSat ? -kSat : (r > kSat ? kSat : r);
    // Wraps like the reference's int32 addition on GCC (only reachable with |y_zero| > 2^30).
    const int32_t q = static_cast<int32_t>(static_cast<uint32_t>(r) + static_cast<uint32_t>(y_zero_));
    return static_cast<int8_t>(clamp_i32(q, lo_, hi_));
  }

  bool clamp_form() const { return clamp_form_; }

 private:
  static bool within(int32_t v) { return v >= -kClampFormLimit && v <= kClampFormLimit; }
  static int32_t wrap_sub(int32_t a, int32_t b) {
    return static_cast<int32_t>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b));
  }

  float y_scale_;
  int32_t y_zero_, lo_, hi_;
  int32_t r_lo_, r_hi_;  // clamp form: bounds on the rounded value, lo - y_zero and hi - y_zero
  bool clamp_form_;
};

// The two rules as the kernels use them: `channel(o)` gives output channel o's constant once
// (hoisted out of the pixel loops), `rule(acc, bias, channel)` the int8 output. The kernels are
// templates over the rule, so the float-scale path is exactly the code it was.
class FloatScaleRule {
 public:
  using Channel = float;
  static constexpr bool kChannelRuns = false;  // one rule for every channel of a call
  FloatScaleRule(const ConvParams& p, const float* mult) : rq_(p), mult_(mult) {}
  Channel channel(int o) const { return mult_[o]; }
  int8_t operator()(int32_t acc, int32_t bias, Channel m) const { return rq_(acc, bias, m); }

 private:
  Requantizer rq_;
  const float* mult_;
};

// TFLite's fixed-point rule (ConvParams::fx_multiplier): requantize_fixed() of requant.h, bit for
// bit, in fewer instructions (tests/armv7em_kernels_test.cc and the firmware's kernel-test check it
// against the shared rule):
//  - channel(o) derives the shifts and RoundingDivideByPOT's mask once per channel;
//  - SaturatingRoundingDoublingHighMul as floor((x * M + 2^30) / 2^31): for a product >= 0 that is
//    TFLite's nudge 2^30 and truncation; for a product < 0, TFLite's trunc((p + 1 - 2^30) / 2^31)
//    is the same floor (the truncation of a negative quotient rounds up: add 2^31 - 1, floor).
//    One SMLAL-style multiply-add and a 64-bit shift; the result is 0x80000000 only for the
//    overflow x = M = INT32_MIN, which becomes INT32_MAX;
//  - RoundingDivideByPOT: (h >> r) + ((h & mask) > (mask >> 1) + (h < 0)).
class FixedPointRule {
 public:
  static constexpr bool kChannelRuns = true;  // runs of channels (with FixedPointFastRule)
  struct Channel {
    int32_t multiplier;
    int32_t left, right;  // max(shift, 0), max(-shift, 0)
    int32_t mask;         // 2^right - 1 (0x7FFFFFFF for right = 31)
  };
  explicit FixedPointRule(const ConvParams& p)
      : m_(p.fx_multiplier), s_(p.fx_shift), y_zero_(p.y_zero), lo_(p.act_min), hi_(p.act_max) {}
  // The kernels' form, FloatScaleRule's arguments (the float multipliers are not used).
  FixedPointRule(const ConvParams& p, const float* /*mult*/) : FixedPointRule(p) {}
  Channel channel(int o) const {
    const int32_t s = s_[o];
    const int32_t right = s > 0 ? 0 : -s;
    return {m_[o], s > 0 ? s : 0, right, static_cast<int32_t>((uint32_t{1} << right) - 1u)};
  }
  int8_t operator()(int32_t acc, int32_t bias, Channel c) const {
    const int32_t x =
        static_cast<int32_t>((static_cast<uint32_t>(acc) + static_cast<uint32_t>(bias)) << c.left);
    const int64_t p = static_cast<int64_t>(x) * c.multiplier + (int64_t{1} << 30);
    int32_t h = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(p) >> 31));
    if (h == INT32_MIN) h = INT32_MAX;
    const int32_t threshold = (c.mask >> 1) + static_cast<int32_t>(static_cast<uint32_t>(h) >> 31);
    int32_t q = (h >> c.right) + ((h & c.mask) > threshold ? 1 : 0);
    q = static_cast<int32_t>(static_cast<uint32_t>(q) + static_cast<uint32_t>(y_zero_));
    q = q < lo_ ? lo_ : q;
    q = q > hi_ ? hi_ : q;
    return static_cast<int8_t>(q);
  }

 private:
  const int32_t* m_;
  const int32_t* s_;
  int32_t y_zero_, lo_, hi_;
};

// FixedPointRule's fast form, for the calls where every channel meets its precondition (applies():
// checked once per call, O(out_c); every MCUNet layer does): a right shift r = -shift in [1, 31] and
// a bounded x = acc + bias, |x| < 2^29. The kernels' acc is the exact sum of at most k products
// (x_i - z) w_i, |x_i - z| <= 128 + |z| and |w_i| <= 128, so |x| <= k 128 (128 + |z|) + |bias|.
// Then, for every input, bit for bit with requantize_fixed():
//  - no left shift, and SRDHM = floor((x M + 2^30) / 2^31) = (2x M + 2^31) >> 32 = SMMULR(2x, M):
//    2x fits int32, and the saturating case (x = INT32_MIN) cannot occur; |h| <= |x| + 1 < 2^30;
//  - RoundingDivideByPOT(h, r) = (h + 2^(r-1) - (h < 0)) >> r: with h = q 2^r + rem that is
//    q + (rem >= 2^(r-1) + (h < 0)) = q + (rem > threshold), TFLite's form; the sum stays below
//    2^29 + 2^30 + 1, no overflow;
//  - then the same wrapping + y_zero and the two clamps as requantize_fixed().
// Per output: one ADD (2x + 2 bias), SMMULR, ADD, SUB, ASR, then the zero point and the clamps.
class FixedPointFastRule {
 public:
  static constexpr int64_t kMaxAbsX = int64_t{1} << 29;  // |acc + bias| < kMaxAbsX
  static constexpr bool kChannelRuns = true;
  struct Channel {
    int32_t multiplier;
    int32_t half;   // 2^(r - 1)
    int32_t right;  // r = -shift, in [1, 31]
  };
  // A bound on |acc| for sums of at most k products (k 128 (128 + |z|)), or -1 when it is not
  // below kMaxAbsX.
  static int64_t acc_bound(const ConvParams& p, int k) {
    const int64_t z = p.x_zero < 0 ? -int64_t{p.x_zero} : int64_t{p.x_zero};
    if (k < 0 || k > kMaxAbsX || z > kMaxAbsX) return -1;  // and no int64 overflow below
    const int64_t acc_max = int64_t{k} * 128 * (128 + z);
    return acc_max < kMaxAbsX ? acc_max : -1;
  }
  // Whether channel o meets the precondition, for |acc| <= acc_max (>= 0).
  static bool channel_ok(const ConvParams& p, const int32_t* bias, int64_t acc_max, int o) {
    const int32_t s = p.fx_shift[o];
    const int64_t b = bias[o] < 0 ? -int64_t{bias[o]} : int64_t{bias[o]};
    return s <= -1 && s >= -31 && acc_max + b < kMaxAbsX;
  }
  // Whether the fast form is exact for every channel of a conv whose outputs are sums of at most
  // k products.
  static bool applies(const ConvParams& p, const int32_t* bias, int k) {
    const int64_t acc_max = acc_bound(p, k);
    if (acc_max < 0) return false;
    for (int o = 0; o < p.out_c; ++o)
      if (!channel_ok(p, bias, acc_max, o)) return false;
    return true;
  }
  FixedPointFastRule(const ConvParams& p, const float* /*mult*/)
      : m_(p.fx_multiplier), s_(p.fx_shift), y_zero_(p.y_zero), lo_(p.act_min), hi_(p.act_max) {}
  Channel channel(int o) const {
    const int32_t r = -s_[o];
    return {m_[o], static_cast<int32_t>(uint32_t{1} << (r - 1)), r};
  }
  int8_t operator()(int32_t acc, int32_t bias, Channel c) const {
    const int32_t x2 =
        static_cast<int32_t>(2u * static_cast<uint32_t>(acc) + 2u * static_cast<uint32_t>(bias));
    const int32_t h = dsp::smmulr(x2, c.multiplier);
    const int32_t t = h + c.half - static_cast<int32_t>(static_cast<uint32_t>(h) >> 31);
    int32_t q = static_cast<int32_t>(static_cast<uint32_t>(t >> c.right) + static_cast<uint32_t>(y_zero_));
    q = q < lo_ ? lo_ : q;
    q = q > hi_ ? hi_ : q;
    return static_cast<int8_t>(q);
  }

 private:
  const int32_t* m_;
  const int32_t* s_;
  int32_t y_zero_, lo_, hi_;
};

}  // namespace tinyzo::armv7em
