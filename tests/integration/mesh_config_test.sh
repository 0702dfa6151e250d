#!/usr/bin/env bash
# `offcore mesh apply/get/delete` with Istio-shaped YAML: invalid YAML and
# unsupported fields are refused naming file:line and field, a host that is
# no Service is refused, nothing of a refused file is stored, and a good
# config round-trips through apply, get and delete. Needs no node: the
# config is checked against the cluster store before anything runs.
source "$(dirname "$0")/lib.sh"

T=$(mktemp -d /tmp/ocmesh.XXXXXX)
cleanup "rm -rf $T"
printf '{"cluster_dir": "%s/cluster"}\n' "$T" > "$T/config.json"
export OFFCORE_CONFIG=$T/config.json
STORE=$T/cluster/mesh/config.json

cat > "$T/svc.yaml" <<'EOF2'
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: web-v1, labels: {app: web, version: v1}}
spec: {kind: ip, ip: 10.77.0.11}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: web-v2, labels: {app: web, version: v2}}
spec: {kind: ip, ip: 10.77.0.12}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 80, targetPort: 8080, appProtocol: http}]
  selector: {app: web}
EOF2
oc svc apply -f "$T/svc.yaml"
[ "$(oc svc get Service web --json | jq -r '.spec.ports[0].appProtocol')" = http ] || fail "appProtocol not stored"

step "invalid YAML: file and line, nothing stored"
printf 'apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: web\n' > "$T/syntax.yaml"
rc=0; err=$(oc mesh apply -f "$T/syntax.yaml" 2>&1) || rc=$?
echo "$err"
[ "$rc" -ne 0 ] || fail "invalid YAML was accepted"
echo "$err" | grep -Eq 'syntax\.yaml:[0-9]+: YAML syntax error' || fail "no file:line in: $err"
[ ! -e "$STORE" ] || fail "a refused apply wrote the store"

step "unsupported and unknown fields: file:line, kind, name and field path"
cat > "$T/fields.yaml" <<'EOF2'
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route:
    - destination: {host: web}
    mirror: {host: web}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all}
spec:
  action: DENY
  rules:
  - to: [{operation: {methods: [POST]}}]
    when:
    - key: request.headers[x-id]
      values: [x]
  colour: red
EOF2
rc=0; err=$(oc mesh apply -f "$T/fields.yaml" 2>&1) || rc=$?
echo "$err"
[ "$rc" -ne 0 ] || fail "unsupported fields were accepted"
[[ "$err" == *'fields.yaml:9: VirtualService "web": spec.http[0].mirror: not supported by offcore'* ]] ||
  fail "mirror: $err"
[[ "$err" == *'fields.yaml:18: AuthorizationPolicy "deny-all": spec.rules[0].when: not supported by offcore'* ]] ||
  fail "when: $err"
[[ "$err" == *'fields.yaml:21: AuthorizationPolicy "deny-all": spec.colour: not supported by offcore'* ]] ||
  fail "unknown field: $err"
[[ "$err" == *"nothing was applied"* ]] || fail "the error does not say what happened: $err"
[ ! -e "$STORE" ] || fail "a refused apply wrote the store"

step "a host that is no Service, and a subset no DestinationRule defines"
cat > "$T/nohost.yaml" <<'EOF2'
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: web, subset: v3}
EOF2
rc=0; err=$(oc mesh apply -f "$T/nohost.yaml" 2>&1) || rc=$?
echo "$err"
[ "$rc" -ne 0 ] || fail "a VirtualService for a missing Service was accepted"
[[ "$err" == *'nohost.yaml:5: VirtualService "shop": spec.hosts[0]: Service "shop" does not exist'* ]] ||
  fail "missing host: $err"
[[ "$err" == *'nohost.yaml:8: VirtualService "shop": spec.http[0].route[0].destination.subset: subset "v3"'* ]] ||
  fail "missing subset: $err"
[ ! -e "$STORE" ] || fail "a refused apply wrote the store"

step "apply, get, re-apply, delete"
cat > "$T/mesh.yaml" <<'EOF2'
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /api}}]
    route:
    - {destination: {host: web, subset: v1}, weight: 90}
    - {destination: {host: web, subset: v2}, weight: 10}
    timeout: 2s
    retries: {attempts: 2, perTryTimeout: 500ms, retryOn: 5xx}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web.default.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec:
  mtls: {mode: STRICT}
EOF2
out=$(oc mesh apply -f "$T/mesh.yaml")
echo "$out"
[ "$out" = $'virtualservice/web created\ndestinationrule/web created\npeerauthentication/strict created' ] ||
  fail "apply output: $out"
[ "$(stat -c %a "$STORE")" = 600 ] || fail "the store is not 0600"
[ "$(jq .generation "$STORE")" = 1 ] || fail "generation after the first apply: $(jq .generation "$STORE")"
oc mesh get
oc mesh get vs web --json | jq -e '.hosts == ["web"] and .http[0].route[1].weight == 10 and
  .http[0].route[1].subset == "v2" and .http[0].timeoutMs == 2000 and .http[0].retries.attempts == 2' >/dev/null ||
  fail "mesh get vs web --json: $(oc mesh get vs web --json)"
[ "$(oc mesh get --json | jq '.items | length')" = 3 ] || fail "mesh get --json lists $(oc mesh get --json)"
[ "$(oc mesh get -n shop --json | jq -r '.items[0].mode')" = STRICT ] || fail "mesh get -n shop"
expect_fail 'not found' oc mesh get destinationrule nope

out=$(oc mesh apply -f "$T/mesh.yaml")
[[ "$out" == *"virtualservice/web unchanged"* ]] || fail "re-apply: $out"
[ "$(jq .generation "$STORE")" = 1 ] || fail "an unchanged apply bumped the generation"
sed -i 's/weight: 90/weight: 50/; s/weight: 10/weight: 50/' "$T/mesh.yaml"
out=$(oc mesh apply -f "$T/mesh.yaml")
[[ "$out" == *"virtualservice/web configured"* ]] || fail "changed apply: $out"
[ "$(jq .generation "$STORE")" = 2 ] || fail "generation after a change"

expect_fail 'routes to its subset' oc mesh delete dr web
expect_fail 'not found' oc mesh delete vs nope
expect_fail 'unknown mesh kind' oc mesh delete gateway web
[ "$(oc mesh delete vs web)" = "virtualservice/web deleted" ] || fail "delete vs"
oc mesh delete destinationrule web >/dev/null
oc mesh delete pa strict -n shop >/dev/null
[ "$(oc mesh get --json | jq '.items | length')" = 0 ] || fail "left after delete: $(oc mesh get --json)"
[ "$(jq .generation "$STORE")" = 5 ] || fail "generation after three deletes: $(jq .generation "$STORE")"
