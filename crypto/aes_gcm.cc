#include "crypto/aes_gcm.h"

#include <sodium.h>

#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

// Each function that uses the instructions says so; the rest of the program is built
// for the baseline CPU, and supported() decides at run time.
#define TG_AESNI __attribute__((target("aes,pclmul,ssse3,sse4.1")))

namespace triglav::crypto {
namespace {

// GHASH is computed as POLYVAL over byte-reversed blocks (RFC 8452, appendix A): the
// reversed block is a little-endian field element, so the carry-less multiply needs no
// bit reflection, and a product is reduced with two multiplies by the constant below.

TG_AESNI inline __m128i reverse_bytes(__m128i x) {
  return _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

// An unreduced 256-bit product, split as lo + mid·x^64 + hi·x^128.
struct Wide {
  __m128i lo, mid, hi;
};

TG_AESNI inline void mul_add(Wide& w, __m128i a, __m128i b) {
  w.lo = _mm_xor_si128(w.lo, _mm_clmulepi64_si128(a, b, 0x00));
  w.hi = _mm_xor_si128(w.hi, _mm_clmulepi64_si128(a, b, 0x11));
  w.mid = _mm_xor_si128(w.mid, _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10)));
}

// (lo + mid·x^64 + hi·x^128) · x^-128 modulo x^128 + x^127 + x^126 + x^121 + 1. Each of
// the two steps adds a multiple of the polynomial that clears the low 64 bits, then
// divides by x^64; the polynomial's low 64 bits are 1 and its high ones 0xc2 << 56.
TG_AESNI inline __m128i reduce(const Wide& w) {
  const __m128i poly = _mm_set_epi64x(static_cast<long long>(0xc200000000000000ULL), 1);
  __m128i lo = _mm_xor_si128(w.lo, _mm_slli_si128(w.mid, 8));
  const __m128i hi = _mm_xor_si128(w.hi, _mm_srli_si128(w.mid, 8));
  lo = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), _mm_clmulepi64_si128(lo, poly, 0x10));
  lo = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), _mm_clmulepi64_si128(lo, poly, 0x10));
  return _mm_xor_si128(hi, lo);
}

TG_AESNI inline __m128i dot(__m128i a, __m128i b) {
  Wide w{_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
  mul_add(w, a, b);
  return reduce(w);
}

// x·v in POLYVAL's field.
TG_AESNI __m128i mul_x(__m128i v) {
  std::uint64_t lo = static_cast<std::uint64_t>(_mm_cvtsi128_si64(v));
  std::uint64_t hi = static_cast<std::uint64_t>(_mm_extract_epi64(v, 1));
  const std::uint64_t carry = hi >> 63;
  hi = (hi << 1) | (lo >> 63);
  lo <<= 1;
  // Constant time: the mask is all ones exactly when a bit was carried out.
  const std::uint64_t mask = 0 - carry;
  hi ^= mask & 0xc200000000000000ULL;
  lo ^= mask & 1;
  return _mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo));
}

// The same two passes 256 bits wide (VAES, VPCLMULQDQ, AVX2): two blocks per
// instruction. Each 128-bit lane does what the narrow code does to one block.
#define TG_WIDE __attribute__((target("aes,pclmul,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq")))

TG_WIDE inline __m256i reverse_lanes(__m256i x) {
  return _mm256_shuffle_epi8(x, _mm256_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3,
                                                4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

// N registers (2N blocks) of keystream XORed into buf; returns the next counter.
template <int N>
TG_WIDE inline __m256i ctr_wide_step(const __m256i* k, __m256i ctr, std::uint8_t* buf) {
  const __m256i two = _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 2);
  __m256i b[N];
  for (int i = 0; i < N; ++i) {
    b[i] = _mm256_xor_si256(reverse_lanes(ctr), k[0]);
    ctr = _mm256_add_epi32(ctr, two);
  }
  for (int r = 1; r < 14; ++r)
    for (int i = 0; i < N; ++i) b[i] = _mm256_aesenc_epi128(b[i], k[r]);
  for (int i = 0; i < N; ++i) {
    auto* p = reinterpret_cast<__m256i*>(buf + 32 * i);
    _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), _mm256_aesenclast_epi128(b[i], k[14])));
  }
  return ctr;
}

// As ctr_xor for whole 128-byte groups; returns the counter for what is left.
TG_WIDE __m128i ctr_xor_wide(const __m128i* rk, __m128i ctr, std::uint8_t* buf, std::size_t groups) {
  __m256i k[15];
  for (int r = 0; r < 15; ++r) k[r] = _mm256_broadcastsi128_si256(rk[r]);
  __m256i c = _mm256_set_m128i(_mm_add_epi32(ctr, _mm_set_epi32(0, 0, 0, 1)), ctr);
  for (; groups >= 2; groups -= 2, buf += 256) c = ctr_wide_step<8>(k, c, buf);
  if (groups == 1) c = ctr_wide_step<4>(k, c, buf);
  return _mm256_castsi256_si128(c);
}

// Absorbs whole 128-byte groups: eight blocks against H^8 .. H^1, one reduction each.
TG_WIDE __m128i ghash_wide(__m128i acc, const __m128i* h, const std::uint8_t* p, std::size_t groups) {
  const __m256i hw[4] = {_mm256_set_m128i(h[6], h[7]), _mm256_set_m128i(h[4], h[5]), _mm256_set_m128i(h[2], h[3]),
                         _mm256_set_m128i(h[0], h[1])};
  for (; groups > 0; --groups, p += 128) {
    __m256i lo = _mm256_setzero_si256(), mid = lo, hi = lo;
    for (int i = 0; i < 4; ++i) {
      __m256i x = reverse_lanes(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * i)));
      if (i == 0) x = _mm256_xor_si256(x, _mm256_set_m128i(_mm_setzero_si128(), acc));
      lo = _mm256_xor_si256(lo, _mm256_clmulepi64_epi128(x, hw[i], 0x00));
      hi = _mm256_xor_si256(hi, _mm256_clmulepi64_epi128(x, hw[i], 0x11));
      mid = _mm256_xor_si256(mid, _mm256_xor_si256(_mm256_clmulepi64_epi128(x, hw[i], 0x01),
                                                   _mm256_clmulepi64_epi128(x, hw[i], 0x10)));
    }
    const Wide w{_mm_xor_si128(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1)),
                 _mm_xor_si128(_mm256_castsi256_si128(mid), _mm256_extracti128_si256(mid, 1)),
                 _mm_xor_si128(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1))};
    acc = reduce(w);
  }
  return acc;
}

// AVX2 (which also says the OS saves the 256-bit registers), then VAES and VPCLMULQDQ
// from CPUID leaf 7 (ECX bits 9 and 10), which not every compiler's builtin names.
bool cpu_has_wide() {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2")) return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  return (c & (1u << 9)) != 0 && (c & (1u << 10)) != 0;
}

// The state of one GHASH: the POLYVAL accumulator and the key's powers of H.
struct Ghash {
  __m128i acc;
  const __m128i* h;  // h[i] = H^(i+1)
  bool wide;         // whole groups through ghash_wide

  // Absorbs n (1..8) byte-reversed blocks at once: acc = (acc ^ x0)·H^n ^ x1·H^(n-1) ^ ...
  TG_AESNI void absorb(const __m128i* x, std::size_t n) {
    Wide w{_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
    mul_add(w, _mm_xor_si128(acc, x[0]), h[n - 1]);
    for (std::size_t i = 1; i < n; ++i) mul_add(w, x[i], h[n - 1 - i]);
    acc = reduce(w);
  }

  // Absorbs bytes, the last block zero-padded (GCM pads AD and ciphertext separately).
  TG_AESNI void absorb_bytes(const std::uint8_t* p, std::size_t len) {
    __m128i x[8];
    if (wide && len >= 128) {
      acc = ghash_wide(acc, h, p, len / 128);
      p += len / 128 * 128;
      len %= 128;
    }
    while (len >= 128) {
      for (int i = 0; i < 8; ++i) x[i] = reverse_bytes(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i)));
      absorb(x, 8);
      p += 128;
      len -= 128;
    }
    if (len == 0) return;
    std::size_t n = 0;
    for (; len >= 16; p += 16, len -= 16) x[n++] = reverse_bytes(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    if (len > 0) {
      alignas(16) std::uint8_t tail[16] = {};
      std::memcpy(tail, p, len);
      x[n++] = reverse_bytes(_mm_load_si128(reinterpret_cast<const __m128i*>(tail)));
    }
    absorb(x, n);
  }
};

// One step of the key schedule: the previous round key of the same parity, each word
// XORed with all the words before it, then with the word the key-generation assist
// made (Pick 0xff: RotWord(SubWord(w)) ^ rcon, for even round keys; 0xaa: SubWord(w),
// for odd ones).
template <int Pick>
TG_AESNI inline __m128i schedule_step(__m128i prev, __m128i assisted) {
  assisted = _mm_shuffle_epi32(assisted, Pick);
  prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 4));
  prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 4));
  prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 4));
  return _mm_xor_si128(prev, assisted);
}

// The AES-256 key schedule (FIPS 197, 5.2): 15 round keys.
TG_AESNI void expand_key(const std::uint8_t key[32], __m128i rk[15]) {
  rk[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
  rk[1] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key + 16));
#define TG_EXPAND(i, rcon)                                                      \
  rk[i] = schedule_step<0xff>(rk[i - 2], _mm_aeskeygenassist_si128(rk[i - 1], rcon)); \
  if ((i) < 14) rk[(i) + 1] = schedule_step<0xaa>(rk[i - 1], _mm_aeskeygenassist_si128(rk[i], 0));
  TG_EXPAND(2, 0x01)
  TG_EXPAND(4, 0x02)
  TG_EXPAND(6, 0x04)
  TG_EXPAND(8, 0x08)
  TG_EXPAND(10, 0x10)
  TG_EXPAND(12, 0x20)
  TG_EXPAND(14, 0x40)
#undef TG_EXPAND
}

TG_AESNI inline __m128i encrypt_block(const __m128i* rk, __m128i b) {
  b = _mm_xor_si128(b, rk[0]);
  for (int r = 1; r < 14; ++r) b = _mm_aesenc_si128(b, rk[r]);
  return _mm_aesenclast_si128(b, rk[14]);
}

// XORs buf[0, len) with the keystream from counter block `first` on (GCM's inc32: only
// the last 32 bits count, big-endian). `ctr` holds the block byte-reversed, so the
// counter is the low 32-bit lane and a lane add increments it.
TG_AESNI void ctr_xor(const __m128i* rk, __m128i ctr, std::uint8_t* buf, std::size_t len) {
  const __m128i one = _mm_set_epi32(0, 0, 0, 1);
  while (len >= 128) {
    __m128i b[8];
    for (int i = 0; i < 8; ++i) {
      b[i] = _mm_xor_si128(reverse_bytes(ctr), rk[0]);
      ctr = _mm_add_epi32(ctr, one);
    }
    for (int r = 1; r < 14; ++r)
      for (int i = 0; i < 8; ++i) b[i] = _mm_aesenc_si128(b[i], rk[r]);
    for (int i = 0; i < 8; ++i) {
      auto* p = reinterpret_cast<__m128i*>(buf + 16 * i);
      _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), _mm_aesenclast_si128(b[i], rk[14])));
    }
    buf += 128;
    len -= 128;
  }
  if (len == 0) return;
  // The rest: up to seven whole blocks and a partial one, still interleaved.
  const std::size_t n = (len + 15) / 16;
  __m128i b[8];
  for (std::size_t i = 0; i < n; ++i) {
    b[i] = _mm_xor_si128(reverse_bytes(ctr), rk[0]);
    ctr = _mm_add_epi32(ctr, one);
  }
  for (int r = 1; r < 14; ++r)
    for (std::size_t i = 0; i < n; ++i) b[i] = _mm_aesenc_si128(b[i], rk[r]);
  for (std::size_t i = 0; i < n; ++i) {
    const __m128i ks = _mm_aesenclast_si128(b[i], rk[14]);
    if (len >= 16) {
      auto* p = reinterpret_cast<__m128i*>(buf);
      _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), ks));
      buf += 16;
      len -= 16;
    } else {
      alignas(16) std::uint8_t tmp[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), ks);
      for (std::size_t j = 0; j < len; ++j) buf[j] ^= tmp[j];
      len = 0;
    }
  }
}


// The tag: E(K, J0) ^ GHASH(AD, C, lengths).
TG_AESNI __m128i compute_tag(const __m128i* rk, const __m128i* h, bool wide, __m128i j0_rev,
                             std::span<const std::uint8_t> ad, const std::uint8_t* c, std::size_t len) {
  Ghash g{_mm_setzero_si128(), h, wide};
  if (!ad.empty()) g.absorb_bytes(ad.data(), ad.size());
  if (len > 0) g.absorb_bytes(c, len);
  // The lengths block, in bits, big-endian: reversed, AD's length is the high half.
  const __m128i lengths =
      _mm_set_epi64x(static_cast<long long>(std::uint64_t{ad.size()} * 8), static_cast<long long>(std::uint64_t{len} * 8));
  g.absorb(&lengths, 1);
  return _mm_xor_si128(encrypt_block(rk, reverse_bytes(j0_rev)), reverse_bytes(g.acc));
}

TG_AESNI __m128i j0_reversed(const std::uint8_t nonce[12]) {
  alignas(16) std::uint8_t j0[16];
  std::memcpy(j0, nonce, 12);
  j0[12] = 0;
  j0[13] = 0;
  j0[14] = 0;
  j0[15] = 1;
  return reverse_bytes(_mm_load_si128(reinterpret_cast<const __m128i*>(j0)));
}

TG_AESNI void init_key(const std::uint8_t key[32], std::uint8_t* round_keys, std::uint8_t* h_powers) {
  auto* rk = reinterpret_cast<__m128i*>(round_keys);
  auto* hp = reinterpret_cast<__m128i*>(h_powers);
  expand_key(key, rk);
  // H = E(K, 0); POLYVAL's key is x·reverse(H).
  hp[0] = mul_x(reverse_bytes(encrypt_block(rk, _mm_setzero_si128())));
  for (int i = 1; i < 8; ++i) hp[i] = dot(hp[i - 1], hp[0]);
}

// The keystream from counter 2 on, wide for whole groups if it may.
TG_AESNI void encrypt_data(const __m128i* rk, bool wide, __m128i j0_rev, std::uint8_t* buf, std::size_t len) {
  __m128i ctr = _mm_add_epi32(j0_rev, _mm_set_epi32(0, 0, 0, 1));
  if (wide && len >= 128) {
    ctr = ctr_xor_wide(rk, ctr, buf, len / 128);
    buf += len / 128 * 128;
    len %= 128;
  }
  ctr_xor(rk, ctr, buf, len);
}

TG_AESNI void seal_impl(const std::uint8_t* round_keys, const std::uint8_t* h_powers, bool wide,
                        const std::uint8_t nonce[12], std::span<const std::uint8_t> ad, std::uint8_t* buf,
                        std::size_t len) {
  const auto* rk = reinterpret_cast<const __m128i*>(round_keys);
  const __m128i j0 = j0_reversed(nonce);
  encrypt_data(rk, wide, j0, buf, len);
  const __m128i tag = compute_tag(rk, reinterpret_cast<const __m128i*>(h_powers), wide, j0, ad, buf, len);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(buf + len), tag);
}

TG_AESNI bool open_impl(const std::uint8_t* round_keys, const std::uint8_t* h_powers, bool wide,
                        const std::uint8_t nonce[12], std::span<const std::uint8_t> ad, std::uint8_t* buf,
                        std::size_t len) {
  if (len < 16) return false;
  const std::size_t clen = len - 16;
  const auto* rk = reinterpret_cast<const __m128i*>(round_keys);
  const __m128i j0 = j0_reversed(nonce);
  const __m128i want = compute_tag(rk, reinterpret_cast<const __m128i*>(h_powers), wide, j0, ad, buf, clen);
  const __m128i got = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + clen));
  // All 16 bytes compared at once, whatever differs: constant time.
  if (_mm_movemask_epi8(_mm_cmpeq_epi8(want, got)) != 0xffff) return false;
  encrypt_data(rk, wide, j0, buf, clen);
  return true;
}

}  // namespace

bool AesGcm256::supported() noexcept {
  __builtin_cpu_init();
  return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("ssse3") &&
         __builtin_cpu_supports("sse4.1");
}

AesGcm256::AesGcm256(const std::uint8_t key[32], bool allow_wide) noexcept {
  static const bool cpu_wide = cpu_has_wide();  // once per process, not per session key
  wide_ = allow_wide && cpu_wide;
  init_key(key, round_keys_, h_powers_);
}

void AesGcm256::seal(const std::uint8_t nonce[12], std::span<const std::uint8_t> ad, std::uint8_t* buf,
                     std::size_t len) const noexcept {
  seal_impl(round_keys_, h_powers_, wide_, nonce, ad, buf, len);
}

bool AesGcm256::open(const std::uint8_t nonce[12], std::span<const std::uint8_t> ad, std::uint8_t* buf,
                     std::size_t len) const noexcept {
  return open_impl(round_keys_, h_powers_, wide_, nonce, ad, buf, len);
}

}  // namespace triglav::crypto

#else  // not x86-64: never supported, so never constructed

namespace triglav::crypto {
bool AesGcm256::supported() noexcept { return false; }
AesGcm256::AesGcm256(const std::uint8_t*, bool) noexcept : round_keys_{}, h_powers_{} {}
void AesGcm256::seal(const std::uint8_t*, std::span<const std::uint8_t>, std::uint8_t*, std::size_t) const noexcept {}
bool AesGcm256::open(const std::uint8_t*, std::span<const std::uint8_t>, std::uint8_t*, std::size_t) const noexcept {
  return false;
}
}  // namespace triglav::crypto

#endif

triglav::crypto::AesGcm256::~AesGcm256() {
  sodium_memzero(round_keys_, sizeof round_keys_);
  sodium_memzero(h_powers_, sizeof h_powers_);
}
