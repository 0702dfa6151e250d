// `offcore demo --cluster etcd`, the takeover step: a mirrored volume's
// record, nexus journal and replica claims live in the demo's etcd member.
// A second node attaches it and writes; the demo's node is refused (the
// claims name their holder); the second node freezes (agent and disk
// service SIGSTOPped: no lease renewals); once its claims' lease ran out
// the demo's node attaches the volume and reads what was written; the
// frozen node woken stops its disk at once and its restart is refused.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/strings.h"
#include "cli/demo_common.h"

namespace offcore::demo {

namespace {

using nlohmann::json;

constexpr int kClaimTtlS = 6;
constexpr int kWriteMiB = 16;

pid_t diskServePid(const std::string& file) {
  auto j = json::parse(readFile(file + ".json").valueOr("{}"), nullptr, false);
  return j.is_object() && j.contains("pid") && j["pid"].is_number_integer() ? j["pid"].get<pid_t>() : 0;
}

bool alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

// The words of `text` from the first `from` on its line holding `what` up
// to `to` (or the line's end); "" when no line holds `what`.
std::string phrase(const std::string& text, const std::string& what, const std::string& from, const std::string& to) {
  size_t at = text.find(what);
  if (at == std::string::npos) return "";
  size_t begin = text.rfind('\n', at);
  begin = begin == std::string::npos ? 0 : begin + 1;
  std::string line = text.substr(begin, text.find('\n', at) - begin);
  size_t f = line.find(from);
  line = f == std::string::npos ? line : line.substr(f);
  return trim(line.substr(0, line.find(to)));
}

}  // namespace

Status runVolumeTakeover(Context& ctx) {
  Cleanup undo("takeover");
  const std::string dir = ctx.work + "/takeover", self = ctx.self, node = ctx.node;
  const std::string node2 = node.substr(0, 6) + "-v", hostns = "dvh" + ctx.id;
  const std::string vol = "t" + ctx.id, host_a = "dta" + ctx.id, host_b = "dtb" + ctx.id;
  const std::string run_root = ctx.cli.config.run_root, ttl = std::to_string(kClaimTtlS);
  OC_TRY(makeDirs(dir + "/a"));
  OC_TRY(makeDirs(dir + "/b"));
  undo.add("scratch dir", [dir] { (void)removeTree(dir); });

  OC_ASSIGN_OR_RETURN(StorageHost a, startStorageHost(ctx, undo, host_a, dir + "/a"));
  OC_ASSIGN_OR_RETURN(StorageHost b, startStorageHost(ctx, undo, host_b, dir + "/b"));
  (void)a;
  (void)b;
  OC_TRY(run({self, "volume", "create", vol, "--size", "128M", "--replicas", "2", "--targets", host_a + "," + host_b}));
  undo.add("volume", [self, vol] { (void)runCapture({self, "volume", "delete", vol, "--force"}); });
  undo.add("node " + node2, [self, node2, hostns] {
    (void)runCapture({self, "dpu", "down", "--name", node2});
    (void)runCapture({"ip", "netns", "delete", hostns});
  });
  OC_TRY(run({self, "dpu", "up", "--name", node2, "--host-netns", hostns}));
  std::printf("replicated volume %s (2 replicas on %s, %s): its record, nexus journal and claims are keys in %s\n",
              vol.c_str(), host_a.c_str(), host_b.c_str(), ctx.cli.config.cluster_store.c_str());

  // Node 2 attaches and writes.
  const std::string file2 = run_root + "/" + node2 + "/disks/" + vol, file1 = run_root + "/" + node + "/disks/" + vol;
  undo.add("disk on " + node2, [self, vol, node2] {
    (void)runCapture({self, "disk", "detach", vol, "--node", node2, "--force"});
  });
  OC_TRY(run({self, "disk", "attach", "--volume", vol, "--node", node2, "--fast-io-fail", "1", "--claim-ttl", ttl}));
  const std::string data = dir + "/written";
  OC_TRY(run({"dd", "if=/dev/urandom", "of=" + data, "bs=1M", "count=" + std::to_string(kWriteMiB), "status=none"}));
  OC_TRY(run({"dd", "if=" + data, "of=" + file2, "bs=1M", "oflag=direct", "conv=notrunc", "status=none"}));
  std::string refused;
  if (run({self, "disk", "attach", "--volume", vol, "--node", node, "--claim-ttl", ttl}, {}, &refused).ok()) {
    (void)runCapture({self, "disk", "detach", vol, "--node", node, "--force"});
    return makeError("node " + node + " attached volume " + vol + " while node " + node2 + " was writing it");
  }
  std::string why = phrase(refused, "in use by node " + node2, "replica ", "; detach");
  if (why.empty()) return makeError("attaching on " + node + " failed otherwise: " + trim(refused));
  std::printf("node %s attached it and wrote %d MiB; node %s is refused (\"%s\")\n", node2.c_str(), kWriteMiB,
              node.c_str(), why.c_str());

  // Node 2 freezes: nothing renews its claims' lease.
  OC_ASSIGN_OR_RETURN(NodeState st, ctx.nodes.state(node2));
  pid_t agent = st.agent_pid, serve = diskServePid(file2);
  if (agent <= 0 || !alive(serve)) return makeError("no agent or disk service pid for node " + node2);
  ::kill(agent, SIGSTOP);
  ::kill(serve, SIGSTOP);
  undo.add("frozen node", [agent, serve] {
    ::kill(agent, SIGCONT);
    ::kill(serve, SIGCONT);
  });
  auto t0 = Clock::now();
  undo.add("disk on " + node, [self, vol, node] {
    (void)runCapture({self, "disk", "detach", vol, "--node", node, "--force"});
  });
  bool took = waitFor(
      [&] {
        std::string out;
        if (run({self, "disk", "attach", "--volume", vol, "--node", node, "--fast-io-fail", "1", "--claim-ttl", ttl},
                {}, &out)
                .ok()) {
          return true;
        }
        ::usleep(400 * 1000);
        return false;
      },
      (kClaimTtlS * 3 + 10) * 1000);
  OC_TRY(checkInterrupted());
  if (!took) return makeError("node " + node + " did not take volume " + vol + " over after node " + node2 + " froze");
  double took_s = secondsSince(t0);
  OC_TRY(run({"cmp", "-n", std::to_string(kWriteMiB << 20), data, file1}));
  std::printf(
      "node %s frozen (agent and disk service SIGSTOPped: no lease renewals): node %s took the volume over %.1f s "
      "later (claim TTL %d s; a node freezing at any point waits at most the TTL plus a renewal period) and reads "
      "the same %d MiB\n",
      node2.c_str(), node.c_str(), took_s, kClaimTtlS, kWriteMiB);

  // Node 2 wakes: its disk service must not write on.
  ::kill(agent, SIGCONT);
  ::kill(serve, SIGCONT);
  if (!waitFor([&] { return !alive(serve); }, 5000)) {
    return makeError("node " + node2 + "'s disk service kept running after its claim ran out");
  }
  const std::string log2 = run_root + "/" + node2 + "/disk-" + vol + ".log";
  std::string refusal;
  waitFor(
      [&] {
        refusal = phrase(readFile(log2).valueOr(""), "in use by node " + node, "replica ", "; detach");
        return !refusal.empty();
      },
      10000);
  if (refusal.empty()) return makeError("node " + node2 + "'s disk service restarted and was not refused; see " + log2);
  std::string stopped = phrase(readFile(log2).valueOr(""), "claim may be lost", "the replicas' claim", " (");
  std::printf("node %s woken: its disk service stopped at once (\"%s\"); its restart is refused (\"%s\")\n",
              node2.c_str(), stopped.c_str(), refusal.c_str());
  std::printf(
      "with the directory store a claim is a flock on one machine: a node on another machine neither sees it nor "
      "can take over; etcd makes the volume movable and keeps one writer\n");
  OC_TRY(run({self, "disk", "detach", vol, "--node", node}));
  return okStatus();
}

}  // namespace offcore::demo
