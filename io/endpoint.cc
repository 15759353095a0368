#include "io/endpoint.h"

#include <algorithm>

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace triglav::io {

Endpoint Endpoint::from_ipv4(std::uint32_t addr_be, std::uint16_t port) noexcept {
  Endpoint e;
  auto* s = reinterpret_cast<sockaddr_in*>(&e.addr);
  s->sin_family = AF_INET;
  s->sin_addr.s_addr = addr_be;
  s->sin_port = htons(port);
  e.len = sizeof(sockaddr_in);
  return e;
}

Endpoint Endpoint::from_ipv6(const std::uint8_t addr[16], std::uint16_t port) noexcept {
  Endpoint e;
  auto* s = reinterpret_cast<sockaddr_in6*>(&e.addr);
  s->sin6_family = AF_INET6;
  std::memcpy(&s->sin6_addr, addr, 16);
  s->sin6_port = htons(port);
  e.len = sizeof(sockaddr_in6);
  return e;
}

Endpoint Endpoint::loopback(int family, std::uint16_t port) noexcept {
  static constexpr std::uint8_t kLo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return family == AF_INET6 ? from_ipv6(kLo6, port) : from_ipv4(htonl(INADDR_LOOPBACK), port);
}

std::uint64_t source_id(const Endpoint& e) noexcept {
  constexpr std::uint64_t kIpv4 = 0xff04'0000'0000'0000ull, kZero6 = 0xff06'0000'0000'0000ull;
  std::uint32_t v4 = 0;
  if (e.family() == AF_INET6) {
    const std::uint8_t* a = reinterpret_cast<const sockaddr_in6*>(&e.addr)->sin6_addr.s6_addr;
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a, kMapped, sizeof kMapped) != 0) {
      std::uint64_t p = 0;
      for (int i = 0; i < 8; ++i) p = p << 8 | a[i];
      return p == 0 ? kZero6 : p;
    }
    std::memcpy(&v4, a + 12, 4);
  } else {
    v4 = reinterpret_cast<const sockaddr_in*>(&e.addr)->sin_addr.s_addr;
  }
  return kIpv4 | ntohl(v4);
}

Endpoint Endpoint::from_sockaddr(const sockaddr* sa, socklen_t len) noexcept {
  Endpoint e;
  if (len > sizeof e.addr) len = sizeof e.addr;
  std::memcpy(&e.addr, sa, len);
  e.len = len;
  return e;
}

std::uint16_t Endpoint::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

bool Endpoint::is_unspecified() const noexcept {
  if (family() == AF_INET)
    return reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr.s_addr == INADDR_ANY;
  if (family() == AF_INET6)
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr);
  return true;
}

std::string Endpoint::to_string() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr, buf,
              sizeof buf);
    return std::string("[") + buf + "]:" + std::to_string(port());
  }
  return "(none)";
}

bool Endpoint::operator==(const Endpoint& o) const noexcept {
  if (family() != o.family()) return false;
  if (family() == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    auto* b = reinterpret_cast<const sockaddr_in*>(&o.addr);
    return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
  }
  if (family() == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    auto* b = reinterpret_cast<const sockaddr_in6*>(&o.addr);
    return std::memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0 && a->sin6_port == b->sin6_port;
  }
  return len == o.len;
}

std::optional<Endpoint> parse_endpoint(std::string_view text, std::string& error) {
  std::string_view host, port_text;
  bool v6 = false;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = std::string("address '") + std::string(text) + "' is not of the form [IPv6]:PORT";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    v6 = true;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      error = std::string("address '") + std::string(text) + "' is not of the form IP:PORT";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port == 0 ||
      port > 65535) {
    error = std::string("address '") + std::string(text) + "' has an invalid port (1-65535)";
    return std::nullopt;
  }
  const std::string h(host);
  if (v6) {
    std::uint8_t a6[16];
    if (inet_pton(AF_INET6, h.c_str(), a6) != 1) {
      error = "'" + h + "' is not an IPv6 address";
      return std::nullopt;
    }
    return Endpoint::from_ipv6(a6, static_cast<std::uint16_t>(port));
  }
  in_addr a4;
  if (inet_pton(AF_INET, h.c_str(), &a4) != 1) {
    error = "'" + h + "' is not an IPv4 address";
    return std::nullopt;
  }
  return Endpoint::from_ipv4(a4.s_addr, static_cast<std::uint16_t>(port));
}

std::string ipv4_to_string(std::uint32_t addr_be) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{addr_be};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string Ipv4Prefix::to_string() const { return ipv4_to_string(addr_be) + "/" + std::to_string(len); }

std::uint32_t Ipv4Prefix::mask_be() const noexcept {
  return htonl(len <= 0 ? 0 : ~std::uint32_t{0} << (32 - std::min(len, 32)));
}

std::uint32_t Ipv4Prefix::network_be() const noexcept { return addr_be & mask_be(); }

namespace {
// "HOST/LEN" or "HOST": the host part, and the length (default_len without one). False
// with error for a length that is not a number from 0 to max_len.
bool split_prefix(std::string_view text, int max_len, int default_len, std::string& host, int& len,
                  std::string& error) {
  const auto slash = text.find('/');
  host = std::string(text.substr(0, slash));
  len = default_len;
  if (slash == std::string_view::npos) return true;
  const auto lt = text.substr(slash + 1);
  auto [ptr, ec] = std::from_chars(lt.data(), lt.data() + lt.size(), len);
  if (ec == std::errc() && ptr == lt.data() + lt.size() && len >= 0 && len <= max_len) return true;
  error = std::string("'") + std::string(text) + "' has an invalid prefix length (0-" + std::to_string(max_len) + ")";
  return false;
}
}  // namespace

std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view text, int default_len,
                                            std::string& error) {
  Ipv4Prefix p;
  std::string host;
  if (!split_prefix(text, 32, default_len, host, p.len, error)) return std::nullopt;
  in_addr a;
  if (inet_pton(AF_INET, host.c_str(), &a) != 1) {
    error = std::string("'") + host + "' is not an IPv4 address";
    return std::nullopt;
  }
  p.addr_be = a.s_addr;
  return p;
}

std::string Ipv6Prefix::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, addr.data(), text, sizeof text);
  return std::string(text) + "/" + std::to_string(len);
}

std::optional<Ipv6Prefix> parse_ipv6_prefix(std::string_view text, std::string& error) {
  Ipv6Prefix p;
  std::string host;
  if (!split_prefix(text, 128, 128, host, p.len, error)) return std::nullopt;
  if (inet_pton(AF_INET6, host.c_str(), p.addr.data()) != 1) {
    error = std::string("'") + host + "' is not an IPv6 address";
    return std::nullopt;
  }
  for (int bit = p.len; bit < 128; ++bit) p.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  return p;
}

}  // namespace triglav::io
