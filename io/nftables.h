// nftables through libnftables (the library the `nft` tool is built on): rulesets are
// given in nft's own language, so what triglav installs reads like what an operator
// would type. Control thread only.
#pragma once

#include <string>

struct nft_ctx;

namespace triglav::io {

class Nftables {
 public:
  Nftables();  // throws std::runtime_error
  ~Nftables();
  Nftables(const Nftables&) = delete;
  Nftables& operator=(const Nftables&) = delete;

  // Runs a script (one transaction). Empty on success, else nft's error text (one line).
  std::string run(const std::string& script);

 private:
  nft_ctx* ctx_ = nullptr;
};

}  // namespace triglav::io
