// Grow-only buffers. Every growth is counted, so a test can show that a
// training loop in steady state allocates nothing.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace bpfast {

inline std::atomic<long>& buffer_growth_counter() {
    static std::atomic<long> count{0};
    return count;
}

// How many times any bpfast work buffer has been (re)allocated since import.
inline long buffer_growths() { return buffer_growth_counter().load(); }

// buffer.data() with room for at least n values; allocates only when it must grow.
template <typename T, typename Allocator>
T* reserve(std::vector<T, Allocator>& buffer, size_t n) {
    if (buffer.size() < n) {
        buffer_growth_counter().fetch_add(1);
        buffer.resize(n);
    }
    return buffer.data();
}

// Like reserve, but the returned pointer is 64-byte aligned (a cache line),
// so that vector loads from packed panels never straddle two lines.
template <typename T>
T* reserve_aligned(std::vector<T>& buffer, size_t n) {
    constexpr size_t ALIGN = 64;
    T* base = reserve(buffer, n + ALIGN / sizeof(T));
    const auto address = reinterpret_cast<std::uintptr_t>(base);
    return reinterpret_cast<T*>((address + ALIGN - 1) / ALIGN * ALIGN);
}

// Allocates on 64-byte boundaries (a cache line, one AVX-512 vector), so
// that a vector pass over an array such as the weights never splits a load
// or a store across two lines.
template <typename T>
struct CacheLineAllocator {
    using value_type = T;
    static constexpr std::align_val_t ALIGN{64};
    CacheLineAllocator() = default;
    template <typename U>
    CacheLineAllocator(const CacheLineAllocator<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), ALIGN)); }
    void deallocate(T* p, size_t) { ::operator delete(p, ALIGN); }
    template <typename U>
    bool operator==(const CacheLineAllocator<U>&) const { return true; }
    template <typename U>
    bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace bpfast
