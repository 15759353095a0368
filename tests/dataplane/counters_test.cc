#include "dataplane/counters.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>

namespace triglav::dp {
namespace {

TEST(Counters, NamesAreUniqueAndSayWhetherTheyAreDrops) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < kCounters; ++i) {
    const CounterInfo& c = counter_info(static_cast<Counter>(i));
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
    EXPECT_EQ(std::string(c.name).starts_with("drop_"), c.kind == CounterKind::Drop) << c.name;
    EXPECT_STRNE(c.help, "") << c.name;
    const std::string metric = c.metric;
    if (c.kind == CounterKind::Drop) {
      EXPECT_EQ(metric, "") << c.name;  // shown as triglav_drops_total{reason}
    }
    if (!metric.empty()) {
      EXPECT_TRUE(metric.starts_with("triglav_") && metric.ends_with("_total")) << metric;
    }
  }
  EXPECT_STREQ(counter_name(Counter::DropAuth), "drop_auth");
  EXPECT_STREQ(counter_name(Counter::kCount), "?");
}

TEST(Counters, DropsSumEveryDropWhereverItSitsInTheTable) {
  Counters w1, w2;
  std::uint64_t want = 0;
  for (std::size_t i = 0; i < kCounters; ++i) {
    const auto c = static_cast<Counter>(i);
    w1.add(c, i + 1);
    w2.add(c, 100);
    if (counter_info(c).kind == CounterKind::Drop) want += i + 1 + 100;
  }
  CounterTotals t;
  t.add(w1);
  t.add(w2);
  EXPECT_EQ(t.drops(), want);
  EXPECT_EQ(t.get(Counter::RxPackets), 101u);
  // The first and last counters of the table are a total and a drop: drops() does not
  // lean on where the drops begin.
  EXPECT_EQ(counter_info(static_cast<Counter>(0)).kind, CounterKind::Total);
  EXPECT_EQ(counter_info(static_cast<Counter>(kCounters - 1)).kind, CounterKind::Drop);
}

TEST(Counters, FormatAndListNameEveryCounterInTableOrder) {
  CounterTotals t;
  t.v[static_cast<std::size_t>(Counter::DropReplay)] = 7;
  const std::string line = t.format();
  std::istringstream words(line);
  std::istringstream list(counter_list());
  std::string word, row;
  for (std::size_t i = 0; i < kCounters; ++i) {
    ASSERT_TRUE(words >> word);
    ASSERT_TRUE(std::getline(list, row));
    const std::string name = counter_name(static_cast<Counter>(i));
    EXPECT_EQ(word.substr(0, word.find('=')), name);
    EXPECT_EQ(row.substr(0, row.find('\t')), name);
    const bool drop = counter_info(static_cast<Counter>(i)).kind == CounterKind::Drop;
    EXPECT_NE(row.find(drop ? "\tdrop\t" : "\ttotal\t"), std::string::npos) << row;
  }
  EXPECT_FALSE(words >> word);
  EXPECT_FALSE(std::getline(list, row));
  EXPECT_NE(line.find("drop_replay=7"), std::string::npos);
}

}  // namespace
}  // namespace triglav::dp
