// libFuzzer target: the PNG / JPEG / BMP decoders (decode_image, host/image_io.cc,
// stb_image). Every input must decode or be refused with a CliError; a decoded
// image must have a sane shape and exactly width x height x channels bytes.
// The first byte picks the channel conversion (0 keep, 1, 3 or 4), the rest is
// the file. Images over 2^20 pixels are refused by decode_image's own bound
// (max_pixels, checked from the header like kMaxImagePixels): a 1 KB JPEG that
// decodes to 64 megapixels takes seconds under ASan and runs the same code
// as a small one.
#include <cstddef>
#include <cstdint>

#include "util/errors.h"
#include "data/image_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const int kChannels[4] = {0, 1, 3, 4};
  const int channels = kChannels[data[0] & 3];
  try {
    const tinyzo::Image8 im = tinyzo::decode_image(data + 1, size - 1, channels, "fuzz", uint64_t(1) << 20);
    if (im.width <= 0 || im.height <= 0 || im.channels < 1 || im.channels > 4 ||
        (channels != 0 && im.channels != channels) ||
        im.pixels.size() != size_t(im.width) * size_t(im.height) * size_t(im.channels))
      __builtin_trap();
  } catch (const tinyzo::CliError&) {
  }
  return 0;
}
