// The sidecar baseline of the demo's mesh step (see demo_sidecar.h).
#include "cli/demo_sidecar.h"

#include <sys/stat.h>

#include <cstdio>

#include "base/files.h"

namespace offcore::demo {

namespace {

// A throwaway CA and one P-256 certificate per role, TLS 1.3: what offcore's
// own CA issues (src/mesh/tls), so both meshes pay the same handshakes.
Status makeCertificates(const std::string& pki) {
  OC_TRY(makeDirs(pki));
  ::chmod(pki.c_str(), 0700);
  OC_TRY(run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
              "-subj", "/O=offcore-demo-sidecar-ca", "-keyout", pki + "/ca.key", "-out", pki + "/ca.pem"}));
  for (const std::string role : {"client", "server"}) {
    const std::string base = pki + "/" + role;
    OC_TRY(run({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                "/O=offcore-demo/CN=" + role, "-keyout", base + ".key", "-out", base + ".csr"}));
    OC_TRY(run({"openssl", "x509", "-req", "-in", base + ".csr", "-CA", pki + "/ca.pem", "-CAkey", pki + "/ca.key",
                "-CAcreateserial", "-days", "1", "-out", base + ".crt"}));
    OC_ASSIGN_OR_RETURN(std::string crt, readFile(base + ".crt"));
    OC_ASSIGN_OR_RETURN(std::string key, readFile(base + ".key"));
    OC_TRY(writeFileAtomic(base + ".pem", crt + key, 0600));
  }
  return okStatus();
}

std::string haproxyConfig(const SidecarSpec& spec, const std::string& pki) {
  std::string servers;
  for (const auto& p : spec.pods) {
    if (p.weight == 0) continue;
    servers += "  server " + p.name + " " + p.ip + ":8080 weight " + std::to_string(p.weight) +
               " ssl verify required ca-file " + pki + "/ca.pem crt " + pki + "/client.pem\n";
  }
  return "global\n  nbthread 1\n  maxconn 1024\n  ssl-default-bind-options ssl-min-ver TLSv1.3\n"
         "  ssl-default-server-options ssl-min-ver TLSv1.3\n"
         "defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
         "  option http-keep-alive\n  http-reuse safe\n"
         "frontend outbound\n  bind 0.0.0.0:15001\n  default_backend web\n"
         "backend web\n  balance roundrobin\n" +
         servers + "frontend inbound\n  bind 0.0.0.0:15006 ssl crt " + pki + "/server.pem ca-file " + pki +
         "/ca.pem verify required\n  default_backend local\n"
         "backend local\n  server app 127.0.0.1:8080\n";
}

// What an Istio init container installs in every pod, with nft.
std::string redirectRules(const std::string& vip) {
  return "table ip offcore_demo_sidecar {\n"
         "  chain output { type nat hook output priority -100; ip daddr " +
         vip +
         " tcp dport 80 redirect to :15001; }\n"
         "  chain prerouting { type nat hook prerouting priority -100; iifname \"eth0\" tcp dport 8080 "
         "redirect to :15006; }\n}\n";
}

}  // namespace

Status deploySidecars(Context& ctx, Cleanup& undo, SidecarSpec& spec) {
  for (auto& pod : spec.pods) {
    OC_TRY(checkInterrupted());
    OC_ASSIGN_OR_RETURN(pod.ip, addCniPod(ctx, undo, {pod.name, pod.node, spec.subnet, false, "default"}));
  }
  const std::string pki = spec.dir + "/pki";
  OC_TRY(makeCertificates(pki));
  OC_TRY(writeFileAtomic(spec.dir + "/haproxy.cfg", haproxyConfig(spec, pki)));
  OC_TRY(writeFileAtomic(spec.dir + "/rules.nft", redirectRules(spec.vip)));
  for (const auto& pod : spec.pods) {
    OC_TRY(checkInterrupted());
    const std::string log = spec.dir + "/" + pod.name + ".log";
    if (pod.weight > 0) {
      OC_ASSIGN_OR_RETURN(pid_t app,
                          startDaemon({"ip", "netns", "exec", pod.name, "python3", "-c", spec.server, pod.name}, log,
                                      inDomain(ctx, Domain::kHost)));
      undo.add("server in " + pod.name, [app] { stopDaemon(app, 1000); });
    }
    OC_TRY(run({"ip", "netns", "exec", pod.name, "nft", "-f", spec.dir + "/rules.nft"}));
    OC_ASSIGN_OR_RETURN(
        pid_t sidecar, startDaemon({"ip", "netns", "exec", pod.name, "haproxy", "-db", "-f", spec.dir + "/haproxy.cfg"},
                                   spec.dir + "/" + pod.name + ".sidecar.log", inDomain(ctx, Domain::kHost)));
    undo.add("sidecar in " + pod.name, [sidecar] { stopDaemon(sidecar, 1000); });
  }
  // Ready when the client reaches a server through both sidecars.
  const SidecarPod& client = spec.pods.front();
  bool ready = waitFor(
      [&] {
        auto r = runCapture({"ip", "netns", "exec", client.name, "curl", "-sf", "-m", "1", "-o", "/dev/null",
                             "http://" + spec.vip + "/"});
        return r.ok() && r->exit_code == 0;
      },
      15000);
  OC_TRY(checkInterrupted());
  if (!ready) return makeError("the sidecar deployment did not answer in 15 s; see " + spec.dir + "/*.log");
  return okStatus();
}

}  // namespace offcore::demo
