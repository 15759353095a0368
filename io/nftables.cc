#include "io/nftables.h"

#include <nftables/libnftables.h>

#include <stdexcept>

namespace triglav::io {

Nftables::Nftables() : ctx_(nft_ctx_new(NFT_CTX_DEFAULT)) {
  if (ctx_ == nullptr) throw std::runtime_error("nftables: cannot create a context");
  nft_ctx_buffer_output(ctx_);
  nft_ctx_buffer_error(ctx_);
}

Nftables::~Nftables() { nft_ctx_free(ctx_); }

std::string Nftables::run(const std::string& script) {
  if (nft_run_cmd_from_buffer(ctx_, script.c_str()) == 0) return {};
  std::string err = nft_ctx_get_error_buffer(ctx_);
  for (char& c : err)
    if (c == '\n') c = ' ';
  while (!err.empty() && err.back() == ' ') err.pop_back();
  return err.empty() ? "nftables refused the ruleset" : err;
}

}  // namespace triglav::io
