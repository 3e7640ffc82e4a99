// A minimal non-owning view (C++17 has no std::span).
#pragma once
#include <cstddef>

namespace tinyzo {

template <class T>
class Span {
 public:
  constexpr Span() = default;
  constexpr Span(T* data, size_t size) : data_(data), size_(size) {}
  template <size_t N>
  constexpr Span(T (&a)[N]) : data_(a), size_(N) {}  // NOLINT: implicit like std::span
  // Allows Span<const T> from Span<T>.
  template <class U>
  constexpr Span(const Span<U>& o) : data_(o.data()), size_(o.size()) {}  // NOLINT

  constexpr T* data() const { return data_; }
  constexpr size_t size() const { return size_; }
  constexpr size_t size_bytes() const { return size_ * sizeof(T); }
  constexpr bool empty() const { return size_ == 0; }
  constexpr T& operator[](size_t i) const { return data_[i]; }
  constexpr T* begin() const { return data_; }
  constexpr T* end() const { return data_ + size_; }
  constexpr Span subspan(size_t offset, size_t count) const { return Span(data_ + offset, count); }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tinyzo
