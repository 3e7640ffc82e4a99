#include "data/image_io.h"

#include <cstring>
#include <memory>

#include "util/errors.h"
#include "util/file_util.h"

// stb's implementations live in this translation unit only, with internal
// linkage, so another file that also compiles stb cannot clash with them.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
// stb's allocations start zeroed: state a corrupt file leaves unset (a table
// no marker defined) reads as zeros, the same on every run, not as whatever the
// heap held (decode_image also refuses the one such case the fuzzer found).
#define STBI_MALLOC(sz) calloc(1, sz)
#define STBI_REALLOC(p, newsz) realloc(p, newsz)
#define STBI_FREE(p) free(p)
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
// stb_image copies zero bytes to or from a null pointer in places (a PNG whose
// first IDAT chunk is empty: stbi__getn(s, NULL, 0)), which memcpy's contract
// forbids (UBSan: "null pointer passed as argument 1"). Its memcpy calls go
// through this wrapper, which does nothing for n == 0. (<string.h> is included
// above, so the macro reaches only stb's own code.)
#include <string.h>
static inline void* tz_stb_memcpy(void* dst, const void* src, size_t n) {
  return n ? memcpy(dst, src, n) : dst;
}
#define memcpy(dst, src, n) tz_stb_memcpy(dst, src, n)
// Corrupt JPEG data drives stb_image's integer arithmetic out of range, two
// ways the fuzzer found (upstream stb_image 2.28 refuses such files, Debian's
// 2022-09 snapshot does not):
//  - DC predictions add up without bound and are multiplied by 16-bit
//    quantizers (stbi__jpeg_decode_block: 65534 * 65535 overflows int);
//  - after a failed Huffman decode the bit count goes negative and the bit
//    reader shifts by 32 (stbi__grow_buffer_unsafe: b << (24 - code_bits)).
// Both only make garbage bits of a file that is already corrupt; neither
// indexes memory. This file is compiled with -fwrapv (CMakeLists.txt), so the
// overflow wraps (defined), and stb_image's functions get
// no_sanitize("signed-integer-overflow", "shift") (UBSan checks overflow even
// under -fwrapv); ASan still checks every memory access, and decode_image's
// contract (a decoded image of the right size, or a CliError) is what the
// fuzzer checks. The C headers stb includes come first so the attribute
// reaches stb's own functions only.
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("signed-integer-overflow", "shift"))), apply_to = function)
#include <stb/stb_image.h>
#pragma clang attribute pop
#else
#pragma GCC diagnostic ignored "-Wattributes"
#define static static __attribute__((no_sanitize("signed-integer-overflow", "shift")))
#include <stb/stb_image.h>
#undef static
#endif
#undef memcpy
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
#if defined(__clang__)
// clang refuses the attribute on the header's static variables; its pragma
// applies it to functions only.
#pragma clang attribute push(__attribute__((no_sanitize("shift"))), apply_to = function)
#include <stb/stb_image_write.h>
#pragma clang attribute pop
#else
#pragma GCC diagnostic ignored "-Wattributes"
#define static static __attribute__((no_sanitize("shift")))
#include <stb/stb_image_write.h>
#undef static
#endif
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

// Two checks of a JPEG's Huffman tables that Debian's stb_image (the 2022-09
// snapshot) does not make, so every table stb would read or use is checked here
// first:
//  - the 16 code counts of a table (DHT) must sum to at most 256; with a larger
//    sum stb writes past its fixed tables (a heap overflow on a crafted file;
//    upstream stb_image 2.28 added the check);
//  - a scan (SOS) may only use tables a DHT before it defined; stb decodes with
//    whatever its never-built tables hold (uninitialised heap: a fuzzer found
//    an assertion in stbi__jpeg_huff_decode that fired or not with the heap's
//    contents, and a release build would index with the garbage).
// The walk goes over the marker segments as stbi__decode_jpeg_image does
// (segment lengths, fill bytes, the entropy-coded data after SOS up to the next
// marker) and reads each DHT the way stbi__process_marker does, counting bytes
// past the end as 0 (stbi__get8 at EOF). It visits every DHT and SOS stb can
// reach (and possibly more, e.g. after a restart marker stb stops at). Which
// tables a scan uses: a baseline scan both of each component's; a progressive
// one (SOF2) its DC table in a first DC scan (Ss = 0, Ah = 0), none in a DC
// refinement, its AC table in an AC scan (Ss > 0), as stbi__parse_entropy_coded_data
// does. Returns what is wrong (for "corrupt JPEG: ..."), or "" when nothing is.
std::string jpeg_huffman_problem(const uint8_t* d, size_t n) {
  // SOI as stbi__get_marker finds it: 0xFF, any number of 0xFF fill bytes, 0xD8.
  size_t i = 0;
  if (n < 2 || d[0] != 0xFF) return "";  // not a JPEG
  while (i < n && d[i] == 0xFF) ++i;
  if (i >= n || d[i] != 0xD8) return "";
  ++i;
  auto at = [&](size_t k) -> size_t { return k < n ? d[k] : 0; };
  bool defined[2][4] = {};  // [class: 0 DC, 1 AC][id]
  bool progressive = false;
  while (i + 1 < n) {
    if (d[i] != 0xFF) {  // junk, or entropy-coded data: skip to the next marker
      ++i;
      continue;
    }
    const uint8_t m = d[i + 1];
    if (m == 0xFF || m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0x01 || m == 0xD8) {
      i += m == 0xFF ? 1 : 2;  // fill byte, stuffed zero, RSTn, TEM, SOI: no segment
      continue;
    }
    if (m == 0xD9) return "";  // EOI
    const size_t len = (at(i + 2) << 8) | at(i + 3);
    if (m == 0xC2) progressive = true;
    if (m == 0xC4) {
      // stb: L = len - 2; while (L > 0) { class/id, 16 counts (sum s), s values; L -= 17 + s; }
      long left = long(len) - 2;
      size_t p = i + 4;
      while (left > 0) {
        size_t sum = 0;
        for (size_t k = 1; k <= 16; ++k) sum += at(p + k);
        if (sum > 256) return "a Huffman table with " + std::to_string(sum) + " codes, at most 256";
        const size_t tc = at(p) >> 4, th = at(p) & 15;
        if (tc <= 1 && th <= 3) defined[tc][th] = true;  // stb refuses other ids
        p += 17 + sum;
        left -= long(17 + sum);
        if (p >= n) break;
      }
    }
    if (m == 0xDA) {
      // Ns, then Ns x (component id, Td << 4 | Ta), then Ss, Se, Ah << 4 | Al.
      const size_t ns = at(i + 4);
      const size_t ss = at(i + 5 + 2 * ns), ah = at(i + 7 + 2 * ns) >> 4;
      const bool uses_dc = !progressive || (ss == 0 && ah == 0);
      const bool uses_ac = !progressive || ss > 0;
      for (size_t c = 0; c < ns && c < 4; ++c) {
        const size_t tables = at(i + 6 + 2 * c), td = tables >> 4, ta = tables & 15;
        if (uses_dc && td <= 3 && !defined[0][td])
          return "a scan uses DC Huffman table " + std::to_string(td) + ", which no DHT before it defines";
        if (uses_ac && ta <= 3 && !defined[1][ta])
          return "a scan uses AC Huffman table " + std::to_string(ta) + ", which no DHT before it defines";
      }
    }
    i += 2 + len;
  }
  return "";
}

// stb_image allocates a PNG's IDAT buffer from the chunk's declared length
// before it reads the chunk: an 80-byte file claiming a 1.3 GB IDAT allocates
// 1.3 GB, then fails. A chunk cannot be longer than the bytes after its header,
// so every chunk up to IEND is checked first. Returns true when one is.
bool png_chunk_past_end(const uint8_t* d, size_t n) {
  static const uint8_t kSignature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  if (n < 8 || std::memcmp(d, kSignature, 8) != 0) return false;
  size_t p = 8;
  while (n - p >= 8) {
    const size_t len = (size_t(d[p]) << 24) | (size_t(d[p + 1]) << 16) | (size_t(d[p + 2]) << 8) | d[p + 3];
    if (len > n - p - 8) return true;
    if (std::memcmp(d + p + 4, "IEND", 4) == 0) return false;
    p += 8 + len;
    if (n - p < 4) return false;  // stb reads a missing CRC as 0 and stops at the end
    p += 4;
  }
  return false;
}

}  // namespace

Image8 decode_image(const uint8_t* data, size_t size, int channels, const std::string& what, uint64_t max_pixels) {
  if (channels < 0 || channels > 4 || channels == 2)
    throw CliError(what + ": unsupported channel count " + std::to_string(channels));
  if (size > size_t(INT32_MAX)) throw CliError(what + ": image file too large");
  const std::string huffman = jpeg_huffman_problem(data, size);
  if (!huffman.empty()) throw CliError(what + ": cannot decode image (corrupt JPEG: " + huffman + ")");
  if (png_chunk_past_end(data, size))
    throw CliError(what + ": cannot decode image (corrupt or truncated PNG: a chunk runs past the end of the file)");
  int w = 0, h = 0, in_channels = 0;
  // The dimensions from the header, before stb allocates the pixels.
  if (!stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &in_channels)) {
    const char* reason = stbi_failure_reason();
    throw CliError(what + ": cannot decode image (" + (reason ? reason : "unknown format") + ")");
  }
  if (w <= 0 || h <= 0 || uint64_t(w) * uint64_t(h) > max_pixels)
    throw CliError(what + ": " + std::to_string(w) + "x" + std::to_string(h) + " pixels, more than the " +
                   std::to_string(max_pixels) + " an input image may have; not decoded");
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

std::vector<uint8_t> encode_bmp(const Image8& image) {
  check_image(image, "BMP encoder");
  std::vector<uint8_t> out;
  if (!stbi_write_bmp_to_func(append_bytes, &out, image.width, image.height, image.channels, image.pixels.data()))
    throw CliError("BMP encoder failed");
  return out;
}

void write_png(const std::string& path, const Image8& image) {
  const std::vector<uint8_t> bytes = encode_png(image);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace tinyzo
