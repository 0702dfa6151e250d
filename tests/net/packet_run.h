// Runs one frame through the dataplane's tc program with BPF_PROG_TEST_RUN,
// as if it had arrived on `ifindex`, without sending it anywhere. Test
// support only: production code never runs packets by hand.
#pragma once

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "net/bpf_dataplane.h"

namespace offcore::testing {

struct PacketRunResult {
  int verdict = 0;             // TC_ACT_* the program returned
  std::vector<uint8_t> frame;  // the frame as the program left it
  uint32_t mark = 0;           // skb->mark as the program left it
};

inline Result<PacketRunResult> runPacket(const Dataplane& dp, std::span<const uint8_t> frame, uint32_t ifindex) {
  int fd = bpfProgramFd(dp);
  if (fd < 0) return makeError("not a BPF dataplane");
  PacketRunResult result;
  result.frame.resize(frame.size() + 256);
  __sk_buff ctx{};
  ctx.ifindex = ifindex;
  __sk_buff ctx_out{};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = result.frame.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(result.frame.size()), .ctx_in = &ctx, .ctx_out = &ctx_out,
              .ctx_size_in = sizeof ctx, .ctx_size_out = sizeof ctx_out, .repeat = 1);
  int rc = bpf_prog_test_run_opts(fd, &opts);
  if (rc != 0) return makeError("BPF_PROG_TEST_RUN: " + std::string(std::strerror(rc == -1 ? errno : -rc)));
  result.verdict = static_cast<int>(opts.retval);
  result.frame.resize(opts.data_size_out);
  result.mark = ctx_out.mark;
  return result;
}

}  // namespace offcore::testing
