#!/usr/bin/python3
"""A small xDS (ADS v3, state of the world) server for offcore's tests.

It compiles offcore's Envoy proto subset (src/mesh/xds/proto) with Debian's
grpc_tools into a temporary directory at start, serves the config a small
JSON file describes, pushes a new version when the file changes (or on
SIGHUP), and logs every ACK and NACK it receives, one line each:

  ACK node=n1 type=cds version=2 nonce=7
  NACK node=n1 type=cds version=1 nonce=9 error=cluster ...: ...

The JSON file:
  {"version": "1",
   "services": [
     {"host": "web", "vip": "10.96.0.10", "port": 80, "protocol": "http",
      "endpoints": [{"ip": "10.1.0.2", "port": 8080, "labels": {"version": "v1"},
                     "health": "HEALTHY"}],
      "subsets": {"v1": {"version": "v1"}},
      "lb": "ROUND_ROBIN", "type": "EDS", "connect_timeout_ms": 1000,
      "circuit_breakers": {"max_connections": 10, "max_pending_requests": 5, "max_requests": 20},
      "outlier_consecutive_5xx": 3,
      "routes": [{"prefix": "/api", "path": "/x", "regex": "^/r.*",
                  "headers": {"x-canary": "1"},
                  "clusters": {"v1": 90, "": 10},
                  "timeout_ms": 2000,
                  "retries": {"retry_on": "5xx,reset", "num_retries": 2, "per_try_timeout_ms": 500}}]},
     {"host": "db", "vip": "10.96.0.11", "port": 5432, "protocol": "tcp", "endpoints": [...]}]}

Cluster names are Istio's outbound|<port>|<subset>|<host>; a subset's
assignment holds the endpoints whose labels match it.

Usage: xds_server.py --config FILE [--port N] [--address 127.0.0.1]
Prints "listening on ADDRESS:PORT" on stdout once it serves.
"""
import argparse
import hashlib
import json
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "src", "mesh", "xds", "proto")
PROTOS = [
    "google/rpc/status.proto",
    "envoy/config/core/v3/base.proto",
    "envoy/type/matcher/v3/matcher.proto",
    "envoy/type/v3/percent.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/service/discovery/v3/discovery.proto",
    "envoy/service/discovery/v3/ads.proto",
]

LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SHORT = {LDS: "lds", RDS: "rds", CDS: "cds", EDS: "eds"}


def log(msg):
    sys.stderr.write(time.strftime("%H:%M:%S ") + msg + "\n")
    sys.stderr.flush()


def compile_protos():
    import grpc_tools
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="offcore-xds-py-")
    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", "-I" + PROTO_ROOT, "-I" + wkt, "--python_out=" + out, "--grpc_python_out=" + out] + PROTOS
    if protoc.main(args) != 0:
        sys.exit("xds_server: protoc failed on " + PROTO_ROOT)
    sys.path.insert(0, out)
    return out


def duration(msg, ms):
    msg.seconds = int(ms) // 1000
    msg.nanos = (int(ms) % 1000) * 1000000


class Config:
    """The JSON file -> the four resource types, as {type_url: {name: msg}}."""

    def __init__(self, pb, doc):
        self.version = str(doc.get("version", "1"))
        self.resources = {LDS: {}, RDS: {}, CDS: {}, EDS: {}}
        for svc in doc.get("services", []):
            self.add_service(pb, svc)

    def add_service(self, pb, s):
        host, port = s["host"], int(s["port"])
        fqdn = host + ".default.svc.cluster.local"
        cname = lambda subset: "outbound|%d|%s|%s" % (port, subset, fqdn)
        listener = pb.listener.Listener(name="%s_%d" % (s.get("vip", "0.0.0.0"), port))
        listener.address.socket_address.address = s.get("vip", "0.0.0.0")
        listener.address.socket_address.port_value = port
        chain = listener.filter_chains.add()
        f = chain.filters.add()
        if s.get("protocol", "http") == "http":
            rname = "%s:%d" % (host, port)
            f.name = "envoy.filters.network.http_connection_manager"
            f.typed_config.Pack(pb.hcm.HttpConnectionManager(stat_prefix=rname,
                                                              rds=pb.hcm.Rds(route_config_name=rname)))
            rc = pb.route.RouteConfiguration(name=rname)
            vh = rc.virtual_hosts.add(name=rname, domains=[fqdn, host, "%s:%d" % (host, port)])
            for i, r in enumerate(s.get("routes") or [{"prefix": "/"}]):
                self.add_route(pb, vh.routes.add(name=r.get("name", "r%d" % i)), r, cname)
            self.resources[RDS][rname] = rc
        else:
            f.name = "envoy.filters.network.tcp_proxy"
            f.typed_config.Pack(pb.tcp.TcpProxy(stat_prefix=host, cluster=cname("")))
        self.resources[LDS][listener.name] = listener
        subsets = {"": {}}
        subsets.update(s.get("subsets", {}))
        for subset, selector in subsets.items():
            c = pb.cluster.Cluster(name=cname(subset))
            c.type = pb.cluster.Cluster.DiscoveryType.Value(s.get("type", "EDS"))
            c.eds_cluster_config.service_name = c.name
            c.lb_policy = pb.cluster.Cluster.LbPolicy.Value(s.get("lb", "ROUND_ROBIN"))
            if "connect_timeout_ms" in s:
                duration(c.connect_timeout, s["connect_timeout_ms"])
            cb = s.get("circuit_breakers")
            if cb:
                t = c.circuit_breakers.thresholds.add()
                for k in ("max_connections", "max_pending_requests", "max_requests"):
                    if k in cb:
                        getattr(t, k).value = int(cb[k])
            if "outlier_consecutive_5xx" in s:
                c.outlier_detection.consecutive_5xx.value = int(s["outlier_consecutive_5xx"])
            self.resources[CDS][c.name] = c
            cla = pb.endpoint.ClusterLoadAssignment(cluster_name=c.name)
            loc = cla.endpoints.add()
            for e in s.get("endpoints", []):
                labels = e.get("labels", {})
                if any(labels.get(k) != v for k, v in selector.items()):
                    continue
                lbe = loc.lb_endpoints.add()
                lbe.endpoint.address.socket_address.address = e["ip"]
                lbe.endpoint.address.socket_address.port_value = int(e["port"])
                lbe.health_status = pb.core.HealthStatus.Value(e.get("health", "HEALTHY"))
                if labels:
                    lbe.metadata.filter_metadata["istio"].update(labels)
            self.resources[EDS][c.name] = cla

    def add_route(self, pb, route, r, cname):
        if "path" in r:
            route.match.path = r["path"]
        elif "regex" in r:
            route.match.safe_regex.regex = r["regex"]
        else:
            route.match.prefix = r.get("prefix", "/")
        for name, value in r.get("headers", {}).items():
            route.match.headers.add(name=name, string_match=pb.matcher.StringMatcher(exact=value))
        clusters = r.get("clusters", {"": 100})
        if len(clusters) == 1:
            route.route.cluster = cname(next(iter(clusters)))
        else:
            for subset, weight in clusters.items():
                cw = route.route.weighted_clusters.clusters.add(name=cname(subset))
                cw.weight.value = int(weight)
        if "timeout_ms" in r:
            duration(route.route.timeout, r["timeout_ms"])
        rp = r.get("retries")
        if rp:
            route.route.retry_policy.retry_on = rp.get("retry_on", "5xx")
            route.route.retry_policy.num_retries.value = int(rp.get("num_retries", 1))
            if "per_try_timeout_ms" in rp:
                duration(route.route.retry_policy.per_try_timeout, rp["per_try_timeout_ms"])


class Protos:
    def __init__(self):
        import importlib
        m = lambda p: importlib.import_module(p.replace("/", ".")[:-len(".proto")] + "_pb2")
        self.core = m("envoy/config/core/v3/base.proto")
        self.matcher = m("envoy/type/matcher/v3/matcher.proto")
        self.listener = m("envoy/config/listener/v3/listener.proto")
        self.route = m("envoy/config/route/v3/route.proto")
        self.cluster = m("envoy/config/cluster/v3/cluster.proto")
        self.endpoint = m("envoy/config/endpoint/v3/endpoint.proto")
        self.hcm = m("envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto")
        self.tcp = m("envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto")
        self.discovery = m("envoy/service/discovery/v3/discovery.proto")
        self.ads_grpc = importlib.import_module("envoy.service.discovery.v3.ads_pb2_grpc")


class Server:
    def __init__(self, pb, path):
        self.pb, self.path = pb, path
        self.lock = threading.Lock()
        self.config = None
        self.digest = None
        self.streams = []  # queues of live streams
        self.reload()

    def reload(self):
        try:
            data = open(self.path, "rb").read()
        except OSError as e:
            log("config: %s" % e)
            return
        digest = hashlib.sha256(data).hexdigest()
        if digest == self.digest:
            return
        try:
            config = Config(self.pb, json.loads(data))
        except Exception as e:  # a test may write a file the server cannot build
            log("config %s refused: %r" % (self.path, e))
            self.digest = digest
            return
        with self.lock:
            self.config, self.digest = config, digest
            streams = list(self.streams)
        log("config version %s: %s" % (config.version, ", ".join(
            "%d %s" % (len(v), SHORT[t]) for t, v in config.resources.items())))
        for q in streams:
            q.put(("push", None))

    def watch(self):
        while True:
            time.sleep(0.2)
            self.reload()

    def StreamAggregatedResources(self, requests, context):
        q = queue.Queue()
        with self.lock:
            self.streams.append(q)

        def reader():
            try:
                for req in requests:
                    q.put(("req", req))
            except Exception:
                pass
            q.put(("end", None))

        threading.Thread(target=reader, daemon=True).start()
        node = "?"
        subs = {}  # type -> names (empty = wildcard)
        sent = {}  # type -> version last sent
        nonces = {}  # nonce -> (type, version)
        counter = [0]

        def respond(type_url):
            with self.lock:
                config = self.config
            res = config.resources[type_url]
            names = subs[type_url]
            resp = self.pb.discovery.DiscoveryResponse(version_info=config.version, type_url=type_url)
            for name in sorted(res):
                if not names or name in names:
                    resp.resources.add().Pack(res[name])
            counter[0] += 1
            resp.nonce = str(counter[0])
            nonces[resp.nonce] = (type_url, config.version)
            sent[type_url] = config.version
            return resp

        try:
            while context.is_active():
                try:
                    kind, req = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                if kind == "end":
                    break
                if kind == "push":
                    for t in list(subs):
                        yield respond(t)
                    continue
                if req.node.id:
                    node = req.node.id
                t = req.type_url
                if t not in SHORT:
                    log("node=%s asked for unknown type %s" % (node, t))
                    continue
                if req.response_nonce:
                    what = "node=%s type=%s version=%s nonce=%s" % (node, SHORT[t], req.version_info,
                                                                   req.response_nonce)
                    if req.HasField("error_detail"):
                        log("NACK %s error=%s" % (what, req.error_detail.message))
                    else:
                        log("ACK %s" % what)
                names = sorted(req.resource_names)
                changed = subs.get(t) != names
                subs[t] = names
                if changed or sent.get(t) != self.config.version:
                    yield respond(t)
        finally:
            with self.lock:
                self.streams.remove(q)
            log("node=%s stream closed" % node)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    gen = compile_protos()
    pb = Protos()
    shutil.rmtree(gen)  # every module is imported by now
    import grpc
    server_state = Server(pb, args.config)
    if server_state.config is None:
        sys.exit("xds_server: %s did not load" % args.config)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))

    class Servicer(pb.ads_grpc.AggregatedDiscoveryServiceServicer):
        def StreamAggregatedResources(self, requests, context):
            return server_state.StreamAggregatedResources(requests, context)

    pb.ads_grpc.add_AggregatedDiscoveryServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("%s:%d" % (args.address, args.port))
    server.start()
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=server_state.reload).start())
    signal.signal(signal.SIGTERM, lambda *_: (server.stop(0), os._exit(0)))
    threading.Thread(target=server_state.watch, daemon=True).start()
    print("listening on %s:%d" % (args.address, port), flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
