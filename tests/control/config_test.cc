// Config files: the generated defaults read back as the defaults, values in every form,
// and each class of mistake names the line and the key.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "control/config.h"

namespace triglav::ctl {
namespace {

Settings parse(const std::string& text, Role role = Role::Client) {
  Settings s;
  parse_config(text, "test.toml", role, s);
  return s;
}

// The error message of parsing `text`, or "" if it parsed.
std::string error_of(const std::string& text, Role role = Role::Client) {
  try {
    parse(text, role);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsRoundTrip) {
  for (Role role : {Role::Server, Role::Client}) {
    const Settings d;
    Settings s = parse(default_config(role), role);
    EXPECT_EQ(s.log_level, d.log_level);
    EXPECT_EQ(s.control_socket, d.control_socket);
    EXPECT_EQ(s.metrics, d.metrics);
    EXPECT_EQ(s.metrics_listen, d.metrics_listen);
    EXPECT_EQ(s.listen, d.listen);
    EXPECT_EQ(s.max_connections, d.max_connections);
    EXPECT_DOUBLE_EQ(s.idle_timeout_s, d.idle_timeout_s);
    EXPECT_EQ(s.tun_name, d.tun_name);
    EXPECT_EQ(s.mtu, d.mtu);
    EXPECT_EQ(s.ipv4, role == Role::Server ? "10.0.85.1/24" : "/24");  // client: assigned by the server
    EXPECT_EQ(s.strategy, d.strategy);
    EXPECT_DOUBLE_EQ(s.probe_interval_s, d.probe_interval_s);
    EXPECT_DOUBLE_EQ(s.busy_probe_interval_s, d.busy_probe_interval_s);
    EXPECT_DOUBLE_EQ(s.rtt_weight, d.rtt_weight);
    EXPECT_DOUBLE_EQ(s.nat_weight, d.nat_weight);
    EXPECT_DOUBLE_EQ(s.hysteresis_s, d.hysteresis_s);
    EXPECT_EQ(s.prefer_healthy, d.prefer_healthy);
    EXPECT_EQ(s.max_uplinks, d.max_uplinks);
    EXPECT_DOUBLE_EQ(s.retry_delay_s, d.retry_delay_s);
    EXPECT_EQ(s.max_retries, d.max_retries);
    EXPECT_EQ(s.tcp_fallback, d.tcp_fallback);
    EXPECT_DOUBLE_EQ(s.tcp_fallback_after_s, d.tcp_fallback_after_s);
    EXPECT_DOUBLE_EQ(s.handshake_timeout_s, d.handshake_timeout_s);
  }
}

TEST(Config, ValuesInEveryForm) {
  Settings s = parse(R"(
[client]
auth_key = "tg1_x"
uplinks = ["eth1", "wwan0"]
auto_discover = true
handshake_timeout = "1m"
tcp_fallback = true
tcp_fallback_after = "1500ms"
[tun]
ipv4_addr = "10.9.0.7"
ipv4_netmask = "255.255.0.0"
routes = ["192.168.0.0/16", "10.1.2.3", "fd12:3456::/48"]
offload = false
[multipath]
retry_delay = "250ms"
max_retries = 5
probe_interval = 2
busy_probe_interval = 0.5
max_uplinks = 3
[multipath.scheduler]
strategy = "weighted_round_robin"
weights = [3, 1.5]
hysteresis = "1.5s"
[transport]
rekey_after = "30s"
reject_after = "1m"
socket_buffer = 1048576
workers = 3
cipher = "chacha20-poly1305"
[routing]
gateway = true
[nat]
tcp_timeout = "1h"
udp_timeout = 90
port_range = "40000-40999"
)");
  EXPECT_EQ(s.authkey, "tg1_x");
  EXPECT_EQ(s.interfaces, (std::vector<std::string>{"eth1", "wwan0"}));
  EXPECT_TRUE(s.auto_discover);
  EXPECT_DOUBLE_EQ(s.handshake_timeout_s, 60);
  EXPECT_EQ(s.ipv4, "10.9.0.7/16");
  EXPECT_EQ(s.routes.size(), 3u);
  EXPECT_DOUBLE_EQ(s.retry_delay_s, 0.25);
  EXPECT_EQ(s.max_retries, 5);
  EXPECT_TRUE(s.tcp_fallback);
  EXPECT_DOUBLE_EQ(s.tcp_fallback_after_s, 1.5);
  EXPECT_DOUBLE_EQ(s.probe_interval_s, 2);
  EXPECT_DOUBLE_EQ(s.busy_probe_interval_s, 0.5);
  EXPECT_EQ(s.max_uplinks, 3);
  EXPECT_EQ(s.strategy, "weighted_round_robin");
  EXPECT_EQ(s.weights, (std::vector<double>{3, 1.5}));
  EXPECT_DOUBLE_EQ(s.hysteresis_s, 1.5);
  EXPECT_DOUBLE_EQ(s.rekey_after_s, 30);
  EXPECT_DOUBLE_EQ(s.reject_after_s, 60);
  EXPECT_EQ(s.socket_buffer, 1 << 20);
  EXPECT_EQ(s.workers, 3);
  EXPECT_EQ(s.cipher, "chacha20-poly1305");
  EXPECT_TRUE(s.gateway);
  EXPECT_FALSE(s.tun_offload);
  EXPECT_DOUBLE_EQ(s.nat_tcp_timeout_s, 3600);
  EXPECT_DOUBLE_EQ(s.nat_udp_timeout_s, 90);
  EXPECT_EQ(s.nat_port_min, 40000);
  EXPECT_EQ(s.nat_port_max, 40999);
  // The netmask alone keeps the role's default address for main() to fill in.
  EXPECT_EQ(parse("[tun]\nipv4_netmask = 16\n").ipv4, "/16");
  Settings srv = parse("[server]\nlisten = [\"0.0.0.0:7443\", \"[::]:7444\"]\nidle_timeout = \"5m\"\n"
                       "client_routes = [\"office=192.168.50.0/24\"]\n", Role::Server);
  EXPECT_EQ(srv.client_routes, (std::vector<std::string>{"office=192.168.50.0/24"}));
  EXPECT_EQ(srv.listen.size(), 2u);
  EXPECT_DOUBLE_EQ(srv.idle_timeout_s, 300);
}

TEST(Config, EveryMistakeNamesTheLineAndTheKey) {
  struct Case {
    const char* text;
    Role role;
    const char* expect;
  } cases[] = {
      {"[client\nauth_key = 1\n", Role::Client, "test.toml line 1"},
      {"\n\n[nonsense]\n", Role::Client, "line 3: unknown section or key 'nonsense'"},
      {"level = \"info\"\n", Role::Client, "unknown section or key 'level'"},
      {"[server]\nlisten = []\n", Role::Client, "[server] belongs in a server config"},
      {"[client]\nauth_key = \"x\"\n", Role::Server, "[client] belongs in a client config"},
      {"[tun]\n\nmtux = 1400\n", Role::Client, "line 3: unknown key 'mtux' in [tun] (allowed: name, ipv4_addr"},
      {"[tun]\nmtu = \"big\"\n", Role::Client, "line 2: [tun] mtu: expected an integer from 576 to 9000"},
      {"[tun]\nmtu = 9001\n", Role::Client, "[tun] mtu: expected an integer from 576 to 9000"},
      {"[tun]\nipv4_addr = \"10.0.0.1/24\"\n", Role::Client, "[tun] ipv4_addr: expected an IPv4 address"},
      {"[tun]\nipv4_netmask = \"255.0.255.0\"\n", Role::Client, "[tun] ipv4_netmask: expected a prefix length"},
      {"[tun]\nroutes = [\"10.0.0.0/33\"]\n", Role::Client, "[tun] routes: expected prefixes such as"},
      {"[routing]\nexclude_routes = [\"fd00::/129\"]\n", Role::Client,
       "[routing] exclude_routes: expected prefixes such as \"192.168.0.0/16\" or \"fd12:3456::/48\" ('fd00::/129': "
       "'fd00::/129' has an invalid prefix length (0-128))"},
      {"[tun]\nname = \"a-very-long-interface\"\n", Role::Client, "[tun] name: expected an interface name"},
      {"[server]\nlisten = [\"nowhere\"]\n", Role::Server, "[server] listen: expected IP:PORT addresses ('nowhere'"},
      {"[server]\nlisten = \"0.0.0.0:1\"\n", Role::Server, "[server] listen: expected an array of strings"},
      {"[server]\nmax_connections = 0\n", Role::Server, "[server] max_connections: expected an integer from 1"},
      {"[server]\nidle_timeout = \"forever\"\n", Role::Server, "[server] idle_timeout: expected a duration"},
      {"[client]\nauto_discover = \"yes\"\n", Role::Client, "[client] auto_discover: expected true or false"},
      {"[client]\nuplinks = [\"eth0\", 1]\n", Role::Client, "[client] uplinks: expected an array of strings"},
      {"[client]\nuplinks = [\"a/b\"]\n", Role::Client, "[client] uplinks: expected interface names"},
      {"[client]\nendpoint = \"1.2.3.4\"\n", Role::Client, "[client] endpoint: expected IP:PORT"},
      {"[multipath]\nprobe_interval = \"1us\"\n", Role::Client, "[multipath] probe_interval: expected a duration from 0.05s"},
      {"[multipath]\nmax_uplinks = 17\n", Role::Client, "[multipath] max_uplinks: expected an integer from 1 to 16"},
      {"[multipath]\nmax_uplinks = 2\n", Role::Server, "unknown key 'max_uplinks' in [multipath]"},
      {"[multipath]\nmax_retries = -1\n", Role::Client, "[multipath] max_retries: expected an integer from 0 to 1000000"},
      {"[client]\ntcp_fallback_after = \"0s\"\n", Role::Client,
       "[client] tcp_fallback_after: expected a duration from 0.1s to 600s"},
      {"[multipath.scheduler]\nstrategy = \"fastest\"\n", Role::Client, "strategy: expected one of adaptive"},
      {"[multipath.scheduler]\nweights = [1, -2]\n", Role::Client, "weights: expected an array of positive numbers"},
      {"[multipath.scheduler]\nrtt_weight = 2\n", Role::Client, "rtt_weight: expected a number from 0"},
      {"[multipath]\n[multipath.scheduler]\nspeed = 1\n", Role::Client, "line 3: unknown key 'speed' in [multipath.scheduler]"},
      {"[log]\nlevel = \"loud\"\n", Role::Client, "[log] level: expected one of trace, debug"},
      {"[metrics]\nlisten = \"localhost\"\n", Role::Server, "[metrics] listen: expected IP:PORT"},
      {"[metrics]\nenabled = 1\n", Role::Server, "[metrics] enabled: expected true or false"},
      {"[transport]\nsocket_buffer = 1000\n", Role::Server, "[transport] socket_buffer: expected an integer from 65536"},
      {"[transport]\nworkers = 16\n", Role::Client, "[transport] workers: expected an integer from 0 to 15"},
      {"[transport]\nrekey_after = \"1m\"\n", Role::Server, "unknown key 'rekey_after' in [transport]"},
      {"[transport]\nreject_after = \"1s\"\n", Role::Client, "[transport] reject_after: expected a duration from 2"},
      {"[server]\nauthorized_clients = 3\n", Role::Server, "[server] authorized_clients: expected a string"},
      {"[nat]\nport_range = \"61000-32768\"\n", Role::Server, "[nat] port_range: expected a port range"},
      {"[nat]\nport_range = \"80-90\"\n", Role::Client, "[nat] port_range: expected a port range"},
      {"[nat]\nport_range = \"40000-\"\n", Role::Client, "[nat] port_range: expected a port range"},
      {"[nat]\nudp_timeout = \"0s\"\n", Role::Client, "[nat] udp_timeout: expected a duration from 1s"},
      {"[nat]\ntcp_timeout = \"1s\"\n", Role::Server, "[nat] tcp_timeout: expected a duration from 10s"},
      {"[routing]\ngateway = \"yes\"\n", Role::Client, "[routing] gateway: expected true or false"},
      {"[tun]\noffload = 0\n", Role::Server, "[tun] offload: expected true or false"},
      {"[transport]\ncipher = \"aes-128-gcm\"\n", Role::Client, "[transport] cipher: expected one of auto, chacha20-poly1305, aes-256-gcm"},
      {"[server]\nclient_routes = [\"192.168.50.0/24\"]\n", Role::Server, "[server] client_routes: expected \"NAME=PREFIX\""},
      {"[server]\nclient_routes = [\"office=192.168.500.0/24\"]\n", Role::Server, "[server] client_routes: expected \"NAME=PREFIX\""},
      {"[routing]\ngateway_nat = 1\n", Role::Client, "[routing] gateway_nat: expected true or false"},
      {"[routing]\ngateway = true\n", Role::Server, "unknown section or key 'routing'"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.text, c.role);
    EXPECT_NE(e.find(c.expect), std::string::npos) << "config:\n" << c.text << "error: " << e;
    EXPECT_EQ(e.rfind("config test.toml line ", 0), 0u) << e;
  }
}

// The first README's keys: each means what its name says, mapped onto today's settings.
TEST(Config, FirstReadmeKeys) {
  Settings s = parse(R"([transport]
send_buffer_size = 2097152
recv_buffer_size = 1048576
connect_timeout = "20s"
tcp_nodelay = false
tcp_keepalive = "45s"
)", Role::Server);
  EXPECT_EQ(s.send_buffer, 2097152);
  EXPECT_EQ(s.recv_buffer, 1048576);
  EXPECT_DOUBLE_EQ(s.tcp_connect_timeout_s, 20);
  EXPECT_FALSE(s.tcp_nodelay);
  EXPECT_DOUBLE_EQ(s.tcp_keepalive_s, 45);
  s = parse(R"([transport]
connect_timeout = "4s"
[nat]
tunnel_ipv4 = "10.0.85.9"
port_range_start = 40000
port_range_end = 50000
[multipath.scheduler]
nat_penalty_weight = 0.25
)");
  EXPECT_DOUBLE_EQ(s.handshake_timeout_s, 4);  // the client's connect: its first handshake
  EXPECT_EQ(s.ipv4, "10.0.85.9");
  EXPECT_EQ(s.nat_port_min, 40000);
  EXPECT_EQ(s.nat_port_max, 50000);
  EXPECT_DOUBLE_EQ(s.nat_weight, 0.25);
  // Both names with one value: fine; with two: a mistake naming both lines.
  EXPECT_EQ(error_of("[tun]\nipv4_addr = \"10.0.85.9\"\n[nat]\ntunnel_ipv4 = \"10.0.85.9\"\n"), "");
  EXPECT_EQ(error_of("[tun]\nipv4_addr = \"10.0.85.9\"\n[nat]\ntunnel_ipv4 = \"10.0.85.8\"\n"),
            "config test.toml line 4: [nat] tunnel_ipv4 is another name for [tun] ipv4_addr, given too (line 2) and "
            "written otherwise: give one of them");
  EXPECT_NE(error_of("[nat]\nport_range = \"40000-50000\"\nport_range_end = 50000\n").find("give one of them"),
            std::string::npos);
  EXPECT_NE(error_of("[transport]\nsend_buffer_size = 1000\n", Role::Server).find("expected a size in bytes"),
            std::string::npos);
  EXPECT_EQ(parse("[transport]\nsend_buffer_size = 0\n").send_buffer, 0);
}

// Every mistake of a file is reported, in the file's order (the reader meets keys in
// name order), the rules between keys among them.
TEST(Config, EveryMistakeInFileOrder) {
  const std::string text = R"([multipath.scheduler]
rtt_weight = 0
loss_weight = 0
bandwidth_weight = 0
nat_weight = 0
strategy = "fastest"
[routing]
gateway_nat = false
dns_servers = ["1.1.1.1", "nowhere"]
[client]
zeta = 1
auth_key = "tg1_x"
alpha = 2
)";
  Settings s;
  ConfigSource where;
  auto problems = read_config(text, "t.toml", Role::Client, s, &where);
  auto more = check_settings(s, Role::Client, where, 0);
  problems.insert(problems.end(), more.begin(), more.end());
  std::stable_sort(problems.begin(), problems.end(), [](const auto& a, const auto& b) { return a.line < b.line; });
  std::vector<int> lines;
  for (const auto& p : problems) lines.push_back(p.line);
  EXPECT_EQ(lines, (std::vector<int>{2, 6, 8, 9, 11, 12, 13})) << joined(problems);
  EXPECT_NE(problems[0].message.find("t.toml line 2: [multipath.scheduler] rtt_weight: "), std::string::npos);
  EXPECT_NE(problems[2].message.find("[routing] gateway_nat: false only applies with gateway"), std::string::npos);
  EXPECT_NE(problems[5].message.find("[client] auth_key: AuthKey "), std::string::npos) << problems[5].message;
  EXPECT_EQ(where.lines.at("client.auth_key"), 12);
}

// Rules between settings given on the command line name the flag.
TEST(Config, RulesNameTheFlagWithoutAFile) {
  Settings s;
  s.authkey = "tg1_x";
  s.exclude = {"10.0.0.0/8"};
  s.reject_after_s = 60;
  s.rekey_after_s = 120;
  const auto problems = check_settings(s, Role::Client, ConfigSource{}, 0);
  ASSERT_EQ(problems.size(), 3u) << joined(problems);
  EXPECT_EQ(problems[0].message.rfind("bad AuthKey: AuthKey ", 0), 0u) << problems[0].message;
  EXPECT_EQ(problems[1].message.rfind("--reject-after: must exceed rekey_after", 0), 0u) << problems[1].message;
  EXPECT_EQ(problems[2].message.rfind("--exclude: only applies with full_tunnel", 0), 0u) << problems[2].message;
}

TEST(Config, ServerRulesAndFiles) {
  Settings s;
  s.client_routes = {"office=10.0.85.0/26", "home=192.168.1.0/24", "lab=192.168.0.0/16"};
  s.routes = {"fd00::/64"};
  auto problems = check_settings(s, Role::Server, ConfigSource{}, kCheckFiles);
  std::string all = joined(problems);
  EXPECT_NE(all.find("needs authorized_clients"), std::string::npos) << all;
  EXPECT_NE(all.find("overlaps the tunnel prefix 10.0.85.1/24"), std::string::npos) << all;
  EXPECT_NE(all.find("lab=192.168.0.0/16 overlaps home=192.168.1.0/24"), std::string::npos) << all;
  EXPECT_NE(all.find("IPv6 prefixes are for clients"), std::string::npos) << all;
  EXPECT_NE(all.find("no key file"), std::string::npos) << all;
  problems = check_settings(s, Role::Server, ConfigSource{}, kCheckFiles | kKeyMayBeMade);
  EXPECT_EQ(joined(problems).find("no key file"), std::string::npos);
  s = Settings{};
  s.key_file = "/nonexistent/server.key";
  problems = check_settings(s, Role::Server, ConfigSource{}, kCheckFiles);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].message.find("/nonexistent/server.key"), std::string::npos) << problems[0].message;
  EXPECT_TRUE(check_settings(s, Role::Server, ConfigSource{}, 0).empty());
}

TEST(Config, MissingFileIsAnError) {
  Settings s;
  EXPECT_THROW(load_config("/nonexistent/triglav.toml", Role::Client, s), std::runtime_error);
}

}  // namespace
}  // namespace triglav::ctl
