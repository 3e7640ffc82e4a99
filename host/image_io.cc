#include "image_io.h"

#include <cstring>
#include <memory>

#include "errors.h"
#include "file_util.h"

// stb's implementations live in this translation unit only, with internal
// linkage, so another file that also compiles stb cannot clash with them.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
// stb's JPEG bit writer shifts a signed int left past its sign bit
// (stbiw__jpg_writeBits, harmless: only bits 16..23 are used), which UBSan
// reports. Its static functions get no_sanitize("shift"); the C headers it
// includes are included first so the macro does not reach them.
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#pragma GCC diagnostic ignored "-Wattributes"
#define static static __attribute__((no_sanitize("shift")))
#include <stb/stb_image_write.h>
#undef static
#pragma GCC diagnostic pop

namespace tinyzo {

namespace {

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* bytes = static_cast<const uint8_t*>(data);
  out->insert(out->end(), bytes, bytes + size);
}

void check_image(const Image8& image, const char* what) {
  if (image.width <= 0 || image.height <= 0 || image.channels < 1 || image.channels > 4 ||
      image.pixels.size() != size_t(image.width) * image.height * image.channels)
    throw CliError(std::string(what) + ": invalid image (" + std::to_string(image.width) + "x" +
                   std::to_string(image.height) + "x" + std::to_string(image.channels) + ", " +
                   std::to_string(image.pixels.size()) + " bytes)");
}

}  // namespace

Image8 decode_image(const uint8_t* data, size_t size, int channels, const std::string& what) {
  if (channels < 0 || channels > 4 || channels == 2)
    throw CliError(what + ": unsupported channel count " + std::to_string(channels));
  if (size > size_t(INT32_MAX)) throw CliError(what + ": image file too large");
  int w = 0, h = 0, in_channels = 0;
  // The dimensions from the header, before stb allocates the pixels.
  if (!stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &in_channels)) {
    const char* reason = stbi_failure_reason();
    throw CliError(what + ": cannot decode image (" + (reason ? reason : "unknown format") + ")");
  }
  if (w <= 0 || h <= 0 || uint64_t(w) * uint64_t(h) > kMaxImagePixels)
    throw CliError(what + ": " + std::to_string(w) + "x" + std::to_string(h) + " pixels, more than the " +
                   std::to_string(kMaxImagePixels) + " an input image may have; not decoded");
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(data, static_cast<int>(size), &w, &h, &in_channels, channels), stbi_image_free);
  if (!pixels) {
    const char* reason = stbi_failure_reason();
    throw CliError(what + ": cannot decode image (" + (reason ? reason : "unknown format") + ")");
  }
  Image8 image;
  image.width = w;
  image.height = h;
  image.channels = channels != 0 ? channels : in_channels;
  image.pixels.assign(pixels.get(), pixels.get() + size_t(w) * h * image.channels);
  return image;
}

Image8 read_image(const std::string& path, int channels) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, kMaxImageFileBytes, "image");
  return decode_image(bytes.data(), bytes.size(), channels, path);
}

std::vector<uint8_t> encode_png(const Image8& image) {
  check_image(image, "PNG encoder");
  std::vector<uint8_t> out;
  if (!stbi_write_png_to_func(append_bytes, &out, image.width, image.height, image.channels,
                              image.pixels.data(), image.width * image.channels))
    throw CliError("PNG encoder failed");
  return out;
}

std::vector<uint8_t> encode_jpeg(const Image8& image, int quality) {
  check_image(image, "JPEG encoder");
  if (image.channels != 1 && image.channels != 3)
    throw CliError("JPEG encoder: needs 1 or 3 channels, got " + std::to_string(image.channels));
  if (quality < 1 || quality > 100) throw CliError("JPEG encoder: quality must be 1..100");
  std::vector<uint8_t> out;
  if (!stbi_write_jpg_to_func(append_bytes, &out, image.width, image.height, image.channels,
                              image.pixels.data(), quality))
    throw CliError("JPEG encoder failed");
  return out;
}

void write_png(const std::string& path, const Image8& image) {
  const std::vector<uint8_t> bytes = encode_png(image);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace tinyzo
