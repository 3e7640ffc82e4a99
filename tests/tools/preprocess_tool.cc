// A test driver for python/tests/test_preprocess.py: runs tinyzo's Pillow
// resampler and eval pipeline on images read from stdin and writes the result
// to stdout, raw bytes both ways. Not installed, not a user tool.
//
//   tinyzo_preprocess_tool resize box|bilinear IN_W IN_H OUT_W OUT_H N
//       N uint8 planes IN_H x IN_W -> N planes OUT_H x OUT_W (Image.resize)
//   tinyzo_preprocess_tool eval SRC CROP RESIZE N
//       N planar uint8 [3][SRC][SRC] -> N int8 [CROP][CROP][3] through
//       InputPreprocessor (RESIZE 0 = the default for CROP)
//   tinyzo_preprocess_tool table
//       the 256 bytes of pixel_to_input_table()
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/pillow_resample.h"
#include "data/preprocess.h"

namespace {

void read_exact(void* p, size_t n) {
  if (std::fread(p, 1, n, stdin) != n) throw std::runtime_error("short input on stdin");
}
void write_exact(const void* p, size_t n) {
  if (std::fwrite(p, 1, n, stdout) != n) throw std::runtime_error("write to stdout failed");
}
int arg_int(const char* s) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0 || v > 1 << 24) throw std::runtime_error(std::string("bad number: ") + s);
  return static_cast<int>(v);
}

int run(int argc, char** argv) {
  using namespace tinyzo;
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "resize" && argc == 8) {
    const std::string f = argv[2];
    if (f != "box" && f != "bilinear") throw std::runtime_error("filter must be box or bilinear");
    const PillowFilter filter = f == "box" ? PillowFilter::kBox : PillowFilter::kBilinear;
    const int in_w = arg_int(argv[3]), in_h = arg_int(argv[4]), out_w = arg_int(argv[5]), out_h = arg_int(argv[6]);
    const int n = arg_int(argv[7]);
    std::vector<uint8_t> in(size_t(in_w) * size_t(in_h));
    for (int i = 0; i < n; ++i) {
      read_exact(in.data(), in.size());
      const std::vector<uint8_t> out = pillow_resize_plane(in.data(), in_w, in_h, out_w, out_h, filter);
      write_exact(out.data(), out.size());
    }
    return 0;
  }
  if (cmd == "eval" && argc == 6) {
    const int src = arg_int(argv[2]), crop = arg_int(argv[3]), resize = arg_int(argv[4]), n = arg_int(argv[5]);
    TzmTensor t{};
    t.dtype = static_cast<uint8_t>(DType::kInt8);
    t.rank = 3;
    t.dims[0] = t.dims[1] = crop;
    t.dims[2] = 3;
    t.dims[3] = 1;
    t.scale = 1.0f / 127.5f;
    t.zero_point = 0;
    const InputPreprocessor prep(t, src, resize);
    std::vector<uint8_t> in(3 * size_t(src) * size_t(src));
    std::vector<int8_t> out(prep.output_elements());
    for (int i = 0; i < n; ++i) {
      read_exact(in.data(), in.size());
      prep.run(in.data(), out.data());
      write_exact(out.data(), out.size());
    }
    return 0;
  }
  if (cmd == "table" && argc == 2) {
    write_exact(pixel_to_input_table().data(), 256);
    return 0;
  }
  std::fprintf(stderr,
               "usage: %s resize box|bilinear IN_W IN_H OUT_W OUT_H N\n"
               "       %s eval SRC CROP RESIZE N\n"
               "       %s table\n",
               argv[0], argv[0], argv[0]);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tinyzo_preprocess_tool: %s\n", e.what());
    return 1;
  }
}
