#include "control/status.h"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace triglav::ctl {
namespace {

nlohmann::json uplink_json(const UplinkStatus& u) {
  return {{"id", u.id},
          {"name", u.name},
          {"state", u.state},
          {"connected", u.connected},
          {"srtt_ms", u.srtt_ms},
          {"rttvar_ms", u.rttvar_ms},
          {"loss", u.loss},
          {"packet_loss", u.packet_loss},
          {"lossy", u.lossy},
          {"throughput_bps", u.throughput_bps},
          {"tx_bytes", u.tx_bytes},
          {"delivered_bytes", u.delivered_bytes},
          {"tx_packets", u.tx_packets},
          {"tx_copies", u.tx_copies},
          {"rx_bytes", u.rx_bytes},
          {"handshakes", u.handshakes},
          {"peer", u.peer},
          {"behind_nat", u.behind_nat},
          {"transport", u.transport},
          {"path_mtu", u.path_mtu}};
}

// A label value in the exposition format: backslash, quote and newline escaped.
std::string label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

std::string num(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

class Exposition {
 public:
  // A metric family: HELP and TYPE once, then its samples.
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(const char* name, const std::string& labels, double v) {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += num(v);
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Each uplink with its labels: the client's interface, or the server's client and id.
struct LabelledUplink {
  std::string labels;
  const UplinkStatus* u;
};

std::vector<LabelledUplink> labelled(const Status& s) {
  std::vector<LabelledUplink> out;
  for (const auto& u : s.uplinks)
    out.push_back({"uplink=\"" + label(u.name) + "\",id=\"" + std::to_string(u.id) + "\"", &u});
  for (const auto& c : s.clients)
    for (const auto& u : c.uplinks)
      out.push_back({"client=\"" + label(c.address) + "\",id=\"" + std::to_string(u.id) + "\"", &u});
  return out;
}

}  // namespace

int health_value(const std::string& state) {
  if (state == "healthy") return 1;
  if (state == "degraded") return 2;
  if (state == "unhealthy") return 3;
  if (state == "down") return 4;
  return 0;
}

std::string to_json(const Status& s) {
  nlohmann::json j = {{"role", s.role},         {"version", s.version}, {"uptime_s", s.uptime_s},
                      {"tun", s.tun},           {"address", s.address}, {"strategy", s.strategy},
                      {"aead", s.aead},         {"workers", s.workers},
                      {"state", s.state},       {"handshakes", s.handshakes},
                      {"handshake_rejects", s.handshake_rejects},
                      {"cookie_replies", s.cookie_replies},
                      {"handshakes_rate_limited", s.handshakes_rate_limited}};
  if (!s.authkey.empty()) j["authkey"] = s.authkey;
  if (!s.endpoint.empty()) j["endpoint"] = s.endpoint;
  if (s.nat) j["nat_entries"] = s.nat_entries ? nlohmann::json(*s.nat_entries) : nlohmann::json(nullptr);
  if (s.tcp_connections) j["tcp_connections"] = *s.tcp_connections;
  nlohmann::json ups = nlohmann::json::array();
  for (const auto& u : s.uplinks) ups.push_back(uplink_json(u));
  j["uplinks"] = ups;
  nlohmann::json clients = nlohmann::json::array();
  for (const auto& c : s.clients) {
    nlohmann::json cu = nlohmann::json::array();
    for (const auto& u : c.uplinks) cu.push_back(uplink_json(u));
    nlohmann::json cj = {{"address", c.address}, {"id", c.id}, {"uplinks", cu}};
    if (!c.key.empty()) cj["key"] = c.key;
    cj["benchmark"] = c.benchmark;
    clients.push_back(std::move(cj));
  }
  j["clients"] = clients;
  nlohmann::json counters = nlohmann::json::object();
  for (std::size_t i = 0; i < s.counters.v.size(); ++i)
    counters[dp::counter_name(static_cast<dp::Counter>(i))] = s.counters.v[i];
  j["counters"] = counters;
  return j.dump();
}

std::string to_prometheus(const Status& s) {
  using dp::Counter;
  Exposition e;
  const std::string role = "role=\"" + s.role + "\"";
  e.family("triglav_info", "gauge", "Constant 1, with the version and role as labels.");
  e.sample("triglav_info", role + ",version=\"" + label(s.version) + "\"", 1);
  e.family("triglav_connection_state", "gauge",
           "Client: 1 while at least one uplink has a session, else 0. Server: 1 while serving.");
  e.sample("triglav_connection_state", role, s.state == "connected" || s.state == "serving" ? 1 : 0);
  const auto ups = labelled(s);
  int active = 0;
  for (const auto& l : ups) active += l.u->connected && (l.u->state == "healthy" || l.u->state == "degraded" ||
                                                         l.u->state == "unknown");
  e.family("triglav_active_uplinks", "gauge", "Uplinks with a session that carry traffic (not Unhealthy or Down).");
  e.sample("triglav_active_uplinks", "", active);
  e.family("triglav_nat_active_entries", "gauge",
           "Connections NATed by triglav's nftables rules (--gateway, --nat-outbound); 0 when off.");
  if (!s.nat || s.nat_entries) e.sample("triglav_nat_active_entries", "", static_cast<double>(s.nat_entries.value_or(0)));
  if (s.tcp_connections) {
    e.family("triglav_tcp_connections", "gauge", "Open TCP connections of clients that fell back to TCP (tcp_fallback).");
    e.sample("triglav_tcp_connections", "", static_cast<double>(*s.tcp_connections));
  }
  if (s.role == "server") {
    e.family("triglav_clients", "gauge", "Clients with at least one uplink session.");
    e.sample("triglav_clients", "", static_cast<double>(s.clients.size()));
  }
  e.family("triglav_uplink_health", "gauge", "Uplink health: 0 unknown, 1 healthy, 2 degraded, 3 unhealthy, 4 down.");
  for (const auto& l : ups) e.sample("triglav_uplink_health", l.labels, health_value(l.u->state));
  e.family("triglav_uplink_rtt_seconds", "gauge", "Smoothed probe round-trip time (absent before the first sample).");
  for (const auto& l : ups)
    if (l.u->srtt_ms >= 0) e.sample("triglav_uplink_rtt_seconds", l.labels, l.u->srtt_ms / 1000);
  e.family("triglav_uplink_loss_ratio", "gauge", "Probe loss over the last 32 probes (0..1).");
  for (const auto& l : ups) e.sample("triglav_uplink_loss_ratio", l.labels, l.u->loss);
  e.family("triglav_uplink_packet_loss_ratio", "gauge",
           "Packets the path lost of those sent (the peer's counts, EMA; fades while idle).");
  for (const auto& l : ups) e.sample("triglav_uplink_packet_loss_ratio", l.labels, l.u->packet_loss);
  e.family("triglav_uplink_throughput_bits_per_second", "gauge", "What the uplink delivered (the peer's reports; else bytes sent), EMA.");
  for (const auto& l : ups) e.sample("triglav_uplink_throughput_bits_per_second", l.labels, l.u->throughput_bps);
  if (s.role == "client") {
    e.family("triglav_uplink_behind_nat", "gauge", "1 when the server saw the uplink's packets from another address or port.");
    for (const auto& l : ups) e.sample("triglav_uplink_behind_nat", l.labels, l.u->behind_nat ? 1 : 0);
  }
  e.family("triglav_uplink_sent_bytes_total", "counter", "Inner bytes of Data sent on the uplink's current session.");
  for (const auto& l : ups) e.sample("triglav_uplink_sent_bytes_total", l.labels, static_cast<double>(l.u->tx_bytes));

  // Every total with a family of its own (dataplane/counters.h), and delivered packets
  // once more under the TUN's name for them. Four of them also per uplink, as the first
  // README showed them; their sample without labels is the process's total, kept for
  // the dashboards that read it (deprecated: sum the labelled samples instead).
  for (std::size_t i = 0; i < dp::kCounters; ++i) {
    const auto c = static_cast<Counter>(i);
    const dp::CounterInfo& info = dp::counter_info(c);
    if (info.kind != dp::CounterKind::Total || info.metric[0] == '\0') continue;
    e.family(info.metric, "counter", info.help);
    e.sample(info.metric, "", static_cast<double>(s.counters.v[i]));
    std::uint64_t UplinkStatus::*per = c == Counter::TxBytes            ? &UplinkStatus::tx_bytes
                                       : c == Counter::TxPackets         ? &UplinkStatus::tx_packets
                                       : c == Counter::RxBytes           ? &UplinkStatus::rx_bytes
                                       : c == Counter::TxRedundantCopies ? &UplinkStatus::tx_copies
                                                                         : nullptr;
    if (per != nullptr)
      for (const auto& l : ups) e.sample(info.metric, l.labels, static_cast<double>(l.u->*per));
  }
  e.family("triglav_tun_packets_written_total", "counter", "Inner packets written to the TUN device.");
  e.sample("triglav_tun_packets_written_total", "", static_cast<double>(s.counters.get(Counter::RxPackets)));
  e.family("triglav_drops_total", "counter", "Packets dropped, by reason.");
  for (std::size_t i = 0; i < dp::kCounters; ++i) {
    const dp::CounterInfo& info = dp::counter_info(static_cast<Counter>(i));
    if (info.kind != dp::CounterKind::Drop) continue;
    const std::string reason = std::string(info.name).substr(5);  // less "drop_"
    e.sample("triglav_drops_total", "reason=\"" + reason + "\"", static_cast<double>(s.counters.v[i]));
  }
  e.family("triglav_handshakes_total", "counter", "Handshakes completed (one per uplink session).");
  e.sample("triglav_handshakes_total", "", static_cast<double>(s.handshakes));
  if (s.role == "server") {
    e.family("triglav_handshake_rejects_total", "counter", "Initiations refused or invalid.");
    e.sample("triglav_handshake_rejects_total", "", static_cast<double>(s.handshake_rejects));
    e.family("triglav_handshake_cookie_replies_total", "counter",
             "Initiations answered with a cookie reply because the server was under load.");
    e.sample("triglav_handshake_cookie_replies_total", "", static_cast<double>(s.cookie_replies));
    e.family("triglav_handshakes_rate_limited_total", "counter", "Initiations dropped by the per-source limit.");
    e.sample("triglav_handshakes_rate_limited_total", "", static_cast<double>(s.handshakes_rate_limited));
  }
  e.family("triglav_uptime_seconds", "gauge", "Seconds since start.");
  e.sample("triglav_uptime_seconds", "", s.uptime_s);
  return e.take();
}

}  // namespace triglav::ctl
