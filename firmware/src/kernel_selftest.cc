// `kernel-test [cases=N] [seed=S]`: the armv7em-dsp kernels against ref:: on the device itself, so
// that the real SXTB16 / SMLAD / SMLAxy / SADD16 instructions (not the host's C models of them) are
// checked bit for bit. Random shapes (odd channel counts, strides, paddings, zero points, tie-heavy
// and saturating requantization parameters) and a few MCUNet-5fps layer shapes, all buffers in the
// arena. Prints one line per failure and "kernel-test PASS ..." or "kernel-test FAIL ...".
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "board.h"
#include "kernels/armv7em/armv7em.h"
#include "tinyzo/arena.h"
#include "tinyzo/kernels/kernels.h"

namespace {

using tinyzo::ConvFn;
using tinyzo::ConvParams;

struct Rng {  // xorshift32: deterministic, no libc state
  uint32_t s;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
  int uniform(int lo, int hi) { return lo + int(next() % uint32_t(hi - lo + 1)); }
  bool chance(int percent) { return int(next() % 100) < percent; }
  int8_t i8() { return int8_t(next() >> 24); }
};

int out_size(int in, int k, int s, int pad_a, int pad_b) { return (in + pad_a + pad_b - k) / s + 1; }

enum Kind { kPointwise, kDepthwise, kConv };
const char* const kKindName[] = {"pointwise", "depthwise", "conv"};

// Fills data and requantization parameters; the shape is already in p.
void fill(Rng& r, ConvParams& p, int8_t* x, size_t n_x, int8_t* w, size_t n_w, int32_t* bias, float* mult) {
  const int mode = r.uniform(0, 9);  // 0-5 realistic, 6-7 ties, 8 extreme, 9 saturating
  p.x_zero = r.chance(20) ? (r.chance(50) ? -128 : 127) : r.uniform(-128, 127);
  p.y_zero = r.uniform(-128, 127);
  p.act_min = r.chance(50) ? -128 : p.y_zero;
  p.act_max = 127;
  for (size_t i = 0; i < n_x; ++i) x[i] = mode == 8 ? (r.chance(50) ? -128 : 127) : r.i8();
  for (size_t i = 0; i < n_w; ++i)
    w[i] = mode == 8 ? (r.chance(50) ? -128 : 127) : mode >= 6 ? int8_t(r.uniform(-3, 3)) : r.i8();
  if (mode >= 6 && mode < 8)
    for (size_t i = 0; i < n_x; ++i) {  // small exact values around the zero point: exact ties
      const int v = int(p.x_zero) + r.uniform(-3, 3);
      x[i] = int8_t(v > 127 ? 127 : v < -128 ? -128 : v);
    }
  p.y_scale = mode >= 6 && mode < 8 ? float(1 << r.uniform(0, 2)) : float(r.uniform(5, 200)) * 1e-3f;
  for (int o = 0; o < p.out_c; ++o) {
    bias[o] =
        mode == 8 ? (r.chance(30) ? 2147483647 : r.uniform(-1000000, 1000000)) : r.uniform(-20000, 20000);
    if (mode >= 6 && mode < 8)
      mult[o] = 1.f / float(1 << r.uniform(0, 3));
    else if (mode == 9)
      mult[o] = float(r.uniform(1, 1000)) * 1e3f;  // saturates at +-2^30 and at the clamp
    else
      mult[o] = float(r.uniform(1, 1000)) * 2e-6f;
  }
}

}  // namespace

int run_kernel_test(int argc, char** argv) {
  int cases = 2000;
  uint32_t seed = 12345;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "cases=", 6) == 0)
      cases = std::atoi(argv[i] + 6);
    else if (std::strncmp(argv[i], "seed=", 5) == 0)
      seed = uint32_t(std::strtoul(argv[i] + 5, nullptr, 0));
    else {
      board_printf("usage: kernel-test [cases=N] [seed=S]\n");
      return 1;
    }
  }
  const tinyzo::KernelTable& best = tinyzo::best_kernels();
  const tinyzo::KernelTable& dsp = tinyzo::armv7em::table();
  board_printf("kernel-test: best_kernels() = %s; %d random cases + MCUNet shapes, seed %u\n", best.name,
               cases, unsigned(seed));
  tinyzo::Arena arena(__arena_start__, size_t(__arena_end__ - __arena_start__));
  // Buffers, reused by every case (sizes bound the shapes drawn below).
  constexpr size_t kMaxX = 40 * 1024, kMaxW = 96 * 1024, kMaxY = 40 * 1024, kMaxC = 640;
  int8_t* x = arena.allocate_array<int8_t>(kMaxX).data();
  int8_t* w = arena.allocate_array<int8_t>(kMaxW).data();
  int8_t* y_ref = arena.allocate_array<int8_t>(kMaxY).data();
  int8_t* y_dsp = arena.allocate_array<int8_t>(kMaxY).data();
  int32_t* bias = arena.allocate_array<int32_t>(kMaxC).data();
  float* mult = arena.allocate_array<float>(kMaxC).data();
  if (!x || !w || !y_ref || !y_dsp || !bias || !mult) {
    board_printf("kernel-test FAIL: arena too small for the test buffers\n");
    return 2;
  }
  // MCUNet-5fps layers (in_hw, in_c, out_hw, out_c, k, stride, groups), padding k / 2.
  static const int16_t kLayers[][7] = {{32, 3, 16, 16, 3, 2, 1},    {16, 16, 16, 16, 3, 1, 16},
                                       {16, 16, 16, 8, 1, 1, 1},    {16, 48, 8, 48, 7, 2, 48},
                                       {8, 160, 8, 160, 7, 1, 160}, {8, 160, 8, 48, 1, 1, 1},
                                       {4, 384, 4, 384, 5, 1, 384}, {4, 96, 4, 576, 1, 1, 1},
                                       {4, 576, 4, 576, 3, 1, 576}, {4, 576, 4, 160, 1, 1, 1}};
  const int n_layers = int(sizeof kLayers / sizeof kLayers[0]);
  Rng r{seed ? seed : 1};
  int failed = 0;
  long long macs = 0;
  for (int n = 0; n < cases + n_layers; ++n) {
    ConvParams p;
    Kind kind;
    if (n < n_layers) {
      const int16_t* l = kLayers[n];
      p.in_h = p.in_w = l[0], p.in_c = l[1], p.out_h = p.out_w = l[2], p.out_c = l[3];
      p.kh = p.kw = l[4], p.stride_h = p.stride_w = l[5], p.groups = l[6];
      p.pad_top = p.pad_left = l[4] / 2;
      kind = p.groups > 1 ? kDepthwise : p.kh == 1 ? kPointwise : kConv;
    } else {
      kind = Kind(r.uniform(0, 2));
      const int k_max = kind == kPointwise ? 1 : 7;
      p.kh = r.uniform(1, k_max);
      p.kw = r.chance(70) ? p.kh : r.uniform(1, k_max);
      p.stride_h = kind == kPointwise ? 1 : r.uniform(1, 3);
      p.stride_w = kind == kPointwise ? 1 : (r.chance(80) ? p.stride_h : r.uniform(1, 3));
      p.in_h = r.uniform(1, 20), p.in_w = r.uniform(1, 20);
      int pb = 0, pr = 0;
      if (kind != kPointwise) {
        p.pad_top = r.uniform(0, p.kh - 1), p.pad_left = r.uniform(0, p.kw - 1);
        pb = r.uniform(0, p.kh - 1), pr = r.uniform(0, p.kw - 1);
        if (p.in_h + p.pad_top + pb < p.kh || p.in_w + p.pad_left + pr < p.kw) {
          --n;
          continue;
        }
      }
      p.out_h = out_size(p.in_h, p.kh, p.stride_h, p.pad_top, pb);
      p.out_w = out_size(p.in_w, p.kw, p.stride_w, p.pad_left, pr);
      const int c = r.chance(50) ? r.uniform(1, 13) : r.uniform(1, 200);
      if (kind == kDepthwise) {
        p.in_c = p.out_c = p.groups = c;
      } else {
        p.in_c = kind == kConv ? r.uniform(1, 12) : c;
        p.out_c = r.chance(50) ? r.uniform(1, 9) : r.uniform(1, 100);
        if (kind == kConv && r.chance(20) && p.in_c % 2 == 0 && p.out_c % 2 == 0) p.groups = 2;
      }
    }
    const size_t n_x = size_t(p.in_h) * p.in_w * p.in_c;
    const size_t n_w = size_t(p.out_c) * p.kh * p.kw * (p.in_c / p.groups);
    const size_t n_y = size_t(p.out_h) * p.out_w * p.out_c;
    if (n_x > kMaxX || n_w > kMaxW || n_y > kMaxY || size_t(p.out_c) > kMaxC) {
      if (n < n_layers)
        board_printf("kernel-test: layer %d does not fit the buffers\n", n), ++failed;
      else
        --n;
      continue;
    }
    fill(r, p, x, n_x, w, n_w, bias, mult);
    const ConvFn ref_fn = kind == kPointwise   ? tinyzo::ref::pointwise_conv2d_s8
                          : kind == kDepthwise ? tinyzo::ref::depthwise_conv2d_s8
                                               : tinyzo::ref::conv2d_s8;
    const ConvFn dsp_fn = kind == kPointwise   ? dsp.pointwise_conv2d
                          : kind == kDepthwise ? dsp.depthwise_conv2d
                                               : dsp.conv2d;
    ref_fn(p, x, w, bias, mult, y_ref);
    std::memset(y_dsp, 0x5a, n_y);
    dsp_fn(p, x, w, bias, mult, y_dsp);
    // Every shape through the general entry point too (it forwards depthwise and pointwise shapes).
    bool ok = std::memcmp(y_ref, y_dsp, n_y) == 0;
    if (ok) {
      std::memset(y_dsp, 0x5a, n_y);
      dsp.conv2d(p, x, w, bias, mult, y_dsp);
      ok = std::memcmp(y_ref, y_dsp, n_y) == 0;
    }
    macs += (long long)(n_y)*p.kh * p.kw * (p.in_c / p.groups);
    if (!ok) {
      ++failed;
      board_printf(
          "kernel-test: case %d %s MISMATCH: in %dx%dx%d out %dx%dx%d k %dx%d s %d,%d pad %d,%d g %d zx %d\n",
          n, kKindName[kind], p.in_h, p.in_w, p.in_c, p.out_h, p.out_w, p.out_c, p.kh, p.kw, p.stride_h,
          p.stride_w, p.pad_top, p.pad_left, p.groups, int(p.x_zero));
    }
  }
  board_printf("kernel-test %s: %d cases, %d mismatches, %u MMAC compared (%s vs ref)\n",
               failed ? "FAIL" : "PASS", cases + n_layers, failed, unsigned(macs / 1000000), dsp.name);
  return failed ? 2 : 0;
}
