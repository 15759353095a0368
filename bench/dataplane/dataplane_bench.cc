// The per-packet work of a worker other than the AEAD (bench/crypto): header encode and
// decode, the 5-tuple hash, the flow table, the dedup window, the scheduler's pick, and
// the TUN offloads: cutting a 64 KB TCP super-packet into segments and joining 44
// segments back into one. Batch sizes 1/16/64 where a batch is the unit of work.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "dataplane/replay_window.h"
#include "dataplane/flow.h"
#include "dataplane/offload.h"
#include "dataplane/scheduler.h"
#include "dataplane/wire.h"

#include "tests/support/packets.h"

namespace {

using namespace triglav;

// An IPv4 TCP packet of `payload` bytes (12 bytes of options), flow `n`.
std::vector<std::uint8_t> tcp_packet(std::size_t payload, unsigned n = 0, std::uint32_t seq = 1000) {
  std::vector<std::uint8_t> p(52 + payload, 0);
  test::write_ipv4(p.data(), p.size(), {.src_be = test::kClientIp, .dst_be = test::kServerIp, .proto = 6, .df = true});
  p[20] = static_cast<std::uint8_t>(0xc0 | (n >> 8));
  p[21] = static_cast<std::uint8_t>(n);
  p[22] = 0x14, p[23] = 0x51;
  p[24] = static_cast<std::uint8_t>(seq >> 24), p[25] = static_cast<std::uint8_t>(seq >> 16);
  p[26] = static_cast<std::uint8_t>(seq >> 8), p[27] = static_cast<std::uint8_t>(seq);
  p[32] = 0x80;
  p[33] = 0x10;
  p[34] = 0xff;
  for (std::size_t i = 0; i < payload; ++i) p[52 + i] = static_cast<std::uint8_t>(i);
  const std::uint16_t ipc = dp::ipv4_header_checksum(p.data(), 20);
  p[10] = static_cast<std::uint8_t>(ipc >> 8);
  p[11] = static_cast<std::uint8_t>(ipc);
  if (p.size() <= 65535) {  // as received: valid checksums (GRO joins nothing else)
    const std::uint16_t c = dp::l4_checksum(p.data(), 20, p.size(), 6);
    p[36] = static_cast<std::uint8_t>(c >> 8);
    p[37] = static_cast<std::uint8_t>(c);
  }
  return p;
}

void BM_HeaderEncodeDecode(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  std::uint8_t buf[dp::kHeaderLen];
  dp::Header h{dp::PacketType::Data, 0x10, 1, 0, 0x12345678, 42};
  for (auto _ : state) {
    for (std::size_t i = 0; i < batch; ++i) {
      h.counter = i;
      dp::encode_header(h, buf);
      dp::Header out;
      benchmark::DoNotOptimize(dp::decode_header({buf, sizeof buf}, out));
      benchmark::DoNotOptimize(out);
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

void BM_FlowHash(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  std::vector<std::vector<std::uint8_t>> pkts;
  for (std::size_t i = 0; i < batch; ++i) pkts.push_back(tcp_packet(64, static_cast<unsigned>(i)));
  for (auto _ : state)
    for (const auto& p : pkts) benchmark::DoNotOptimize(dp::flow_hash(p.data(), p.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

dp::Scheduler two_uplinks(dp::Strategy s) {
  dp::SchedulerConfig cfg;
  cfg.strategy = s;
  dp::Scheduler sched(cfg);
  dp::UplinkView v[2];
  for (auto& u : v) {
    u.state = dp::HealthState::Healthy;
    u.srtt_ms = 10;
    u.throughput_bps = 50e6;
  }
  v[1].id = 1;
  v[1].srtt_ms = 30;
  sched.update({v, 2}, 0);
  return sched;
}

void BM_FlowLookup(benchmark::State& state) {  // 4096 live flows, looked up in turn
  const auto batch = static_cast<std::size_t>(state.range(0));
  dp::FlowTable table;
  dp::Scheduler sched = two_uplinks(dp::Strategy::Adaptive);
  std::vector<std::uint64_t> hashes;
  for (unsigned i = 0; i < 4096; ++i) {
    const auto p = tcp_packet(0, i);
    hashes.push_back(dp::flow_hash(p.data(), p.size()));
    (void)table.route(hashes.back(), 0, sched);
  }
  std::size_t next = 0;
  for (auto _ : state)
    for (std::size_t i = 0; i < batch; ++i) {
      benchmark::DoNotOptimize(table.route(hashes[next], 1000, sched));
      next = (next + 1) & 4095;
    }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

void BM_DedupInsertTest(benchmark::State& state) {  // in order, with a duplicate every 8th
  const auto batch = static_cast<std::size_t>(state.range(0));
  dp::DedupWindow w;
  std::uint32_t seq = 0;
  for (auto _ : state)
    for (std::size_t i = 0; i < batch; ++i) {
      benchmark::DoNotOptimize(w.check_and_update((i & 7) == 7 ? seq - 3 : seq));
      ++seq;
    }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

void BM_SchedulerPick(benchmark::State& state) {
  const auto strategy = static_cast<dp::Strategy>(state.range(0));
  dp::Scheduler sched = two_uplinks(strategy);
  state.SetLabel(dp::strategy_name(strategy));
  std::uint64_t h = 0x9e3779b97f4a7c15ull;
  for (auto _ : state) {
    h = h * 6364136223846793005ull + 1;
    benchmark::DoNotOptimize(sched.pick(h | 1));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// One 64 KB TUN read (a TCP super-packet, MSS 1368) cut into its 48 segments.
void BM_GsoSplit64K(benchmark::State& state) {
  auto super = tcp_packet(65000);
  dp::VnetHdr h;
  h.flags = dp::kVnetNeedsCsum;
  h.gso_type = dp::kGsoTcp4;
  h.gso_size = 1368;
  std::vector<std::uint8_t> seg(52 + 1368);
  std::size_t segments = 0;
  for (auto _ : state) {
    dp::GsoPlan plan;
    (void)dp::classify_tun_packet(h, super.data(), super.size(), plan);
    for (unsigned i = 0; i < plan.segments; ++i) benchmark::DoNotOptimize(dp::write_segment(plan, super.data(), i, seg.data()));
    segments = plan.segments;
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * segments));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 65000));
}

// 44 received segments of one flow joined into one TUN write (each segment's checksums
// verified, the first's headers rewritten; the payloads stay where they are).
void BM_GroCoalesce44(benchmark::State& state) {
  std::vector<std::vector<std::uint8_t>> segs;
  for (unsigned i = 0; i < 44; ++i) segs.push_back(tcp_packet(1368, 7, 1000 + i * 1368));
  const auto pristine = segs[0];
  for (auto _ : state) {
    std::memcpy(segs[0].data(), pristine.data(), 52);  // gro_finish rewrote the first headers
    dp::GroRun run;
    (void)dp::gro_start(run, segs[0].data(), segs[0].size());
    for (unsigned i = 1; i < 44; ++i) (void)dp::gro_append(run, segs[i].data(), segs[i].size());
    benchmark::DoNotOptimize(dp::gro_finish(run));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 44));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 44 * 1368));
}

BENCHMARK(BM_HeaderEncodeDecode)->Arg(1)->Arg(16)->Arg(64);
BENCHMARK(BM_FlowHash)->Arg(1)->Arg(16)->Arg(64);
BENCHMARK(BM_FlowLookup)->Arg(1)->Arg(16)->Arg(64);
BENCHMARK(BM_DedupInsertTest)->Arg(1)->Arg(16)->Arg(64);
BENCHMARK(BM_SchedulerPick)->DenseRange(0, 7);
BENCHMARK(BM_GsoSplit64K);
BENCHMARK(BM_GroCoalesce44);

}  // namespace

BENCHMARK_MAIN();
