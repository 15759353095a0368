#include "dataplane/counters.h"

namespace triglav::dp {
namespace {

constexpr CounterInfo kInfo[] = {
#define TRIGLAV_COUNTER_INFO(e, name, kind, where, metric, help) \
  {name, CounterKind::kind, CounterWhere::where, metric, help},
    TRIGLAV_COUNTERS(TRIGLAV_COUNTER_INFO)
#undef TRIGLAV_COUNTER_INFO
};
static_assert(std::size(kInfo) == kCounters);

}  // namespace

const CounterInfo& counter_info(Counter c) noexcept { return kInfo[static_cast<std::size_t>(c)]; }

const char* counter_name(Counter c) noexcept {
  return static_cast<std::size_t>(c) < kCounters ? kInfo[static_cast<std::size_t>(c)].name : "?";
}

const char* counter_where_name(CounterWhere w) noexcept {
  switch (w) {
    case CounterWhere::Rx: return "rx";
    case CounterWhere::Tx: return "tx";
    case CounterWhere::Control: return "control";
  }
  return "?";
}

std::string counter_list() {
  std::string s;
  for (const CounterInfo& i : kInfo) {
    s += i.name;
    s += i.kind == CounterKind::Drop ? "\tdrop\t" : "\ttotal\t";
    s += counter_where_name(i.where);
    s += '\t';
    s += i.help;
    s += '\n';
  }
  return s;
}

void CounterTotals::add(const Counters& c) noexcept {
  for (std::size_t i = 0; i < v.size(); ++i) v[i] += c.v[i].load(std::memory_order_relaxed);
}

std::uint64_t CounterTotals::drops() const noexcept {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (kInfo[i].kind == CounterKind::Drop) n += v[i];
  return n;
}

std::string CounterTotals::format() const {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!s.empty()) s += ' ';
    s += kInfo[i].name;
    s += '=';
    s += std::to_string(v[i]);
  }
  return s;
}

}  // namespace triglav::dp
