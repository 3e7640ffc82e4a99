// Reading and writing small images on the host (PNG, JPEG and BMP through the stb
// single-file libraries, Debian's libstb-dev). Images are 8 bits per value,
// interleaved (HWC): pixel (y, x) channel c at pixels[(y * width + x) * channels + c].
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tinyzo {

struct Image8 {
  int width = 0;
  int height = 0;
  int channels = 0;  // 1 (gray), 3 (RGB) or 4 (RGBA)
  std::vector<uint8_t> pixels;

  uint8_t& at(int y, int x, int c) { return pixels[(size_t(y) * width + x) * channels + c]; }
  uint8_t at(int y, int x, int c) const { return pixels[(size_t(y) * width + x) * channels + c]; }
};

// Bounds of an input image: the file (checked from its size before reading)
// and the pixels (checked from the header before decoding).
constexpr uint64_t kMaxImageFileBytes = uint64_t(64) << 20;
constexpr uint64_t kMaxImagePixels = uint64_t(1) << 26;

// Decodes a PNG, JPEG or BMP file (8-bit; 16-bit PNGs are reduced to 8 bits).
// `channels` 0 keeps the file's channel count; 1, 3 or 4 converts (3 from
// RGBA drops alpha without compositing, as OpenCV's imread does). Throws
// CliError "<path>: <reason>" when the file is missing or not a decodable image.
Image8 read_image(const std::string& path, int channels = 0);

// Decodes PNG, JPEG or BMP bytes held in memory; `what` names the source in errors.
// Refused with a CliError before stb_image allocates anything: images over
// `max_pixels` (at most kMaxImagePixels), PNG chunks that run past the end,
// JPEG Huffman tables over 256 codes (which Debian's stb_image would overflow).
Image8 decode_image(const uint8_t* data, size_t size, int channels, const std::string& what,
                    uint64_t max_pixels = kMaxImagePixels);

// Encodes as PNG. Throws CliError when encoding fails.
std::vector<uint8_t> encode_png(const Image8& image);

// Encodes as baseline JPEG with the IJG quality scale (1..100) and stb's
// encoder: 4:2:0 chroma subsampling at quality <= 90, 4:4:4 above. `image`
// has 1 or 3 channels. Throws CliError when encoding fails.
std::vector<uint8_t> encode_jpeg(const Image8& image, int quality);

// Encodes as an uncompressed BMP with stb's writer (24 bits per pixel for
// gray and RGB). Throws CliError when encoding fails.
std::vector<uint8_t> encode_bmp(const Image8& image);

// Writes a PNG atomically (temporary file + rename). Throws CliError.
void write_png(const std::string& path, const Image8& image);

}  // namespace tinyzo
