#!/usr/bin/env bash
# Registries as users have them (issue 15, test 3), with Debian's
# docker-registry:
#  1. HTTP basic auth (htpasswd) over HTTPS with a CA the user gives
#     (--ca-file): convert and lazy reads through the image service work with
#     credentials from --creds and from Docker's config.json; no CA, no
#     credentials and wrong credentials each give a one-line error naming the
#     registry;
#  2. the bearer-token flow against a token service this test runs (JWTs
#     the registry verifies): convert and lazy reads work, wrong credentials
#     are refused, and a token that expired is fetched again.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images_lib.sh"
N=iau$ID
work=$(mktemp -d /var/tmp/oc-iau-XXXX); cleanup "rm -rf $work"
CAT=$work/catalog
keep_logs "$work"
node_up "$N" >/dev/null
cleanup "rm -rf /var/cache/offcore/$N"
cleanup "umount_below /run/offcore/$N/images"
cleanup "\"$OFFCORE\" dpu service del --name $N --service images --force"
cleanup "umount_below $work/mnt"

host_ip() { oc fabric host list --json | jq -r --arg h "$1" '.[] | select(.name==$h) | .ip' | cut -d/ -f1; }
PIDS=()
cleanup 'for p in "${PIDS[@]}"; do kill -- -"$p" 2>/dev/null || kill "$p" 2>/dev/null; done'
# serve HOST LOG CMD...: runs CMD in a fabric host's namespace, in its own session.
serve() {
  local host=$1 log=$2; shift 2
  setsid "$OFFCORE" fabric exec "$host" -- "$@" >>"$log" 2>&1 &
  PIDS+=($!)
}
wait_http() {  # URL [curl args]: until anything answers
  local url=$1; shift
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url")" != 000 ] && return 0
    sleep 0.1
  done
  fail "nothing answers at $url"
}

step "an image, the CA and the credentials"
img=$work/img; mkdir -p "$img/etc" "$img/data"
echo "hello from an authenticated registry" > "$img/etc/greeting"
head -c $((2 << 20)) /dev/urandom > "$img/data/one"
head -c $((2 << 20)) /dev/urandom > "$img/data/two"
python3 "$IMG_DIR/make_dir_image.py" "$work/layout" v1 '{"Cmd":["/bin/sh"]}' "$img"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 \
  -subj /CN=offcore-test-ca 2>/dev/null
echo '{"username": "alice", "password": "s3cret"}' > "$work/creds.json"
echo '{"username": "alice", "password": "wrong"}' > "$work/bad.json"
chmod 600 "$work/creds.json" "$work/bad.json"

# read_lazy REF FILE [attach args]: attaches REF's layer to the node with a
# fresh image service and cache, prints FILE's sha256 read through it.
read_lazy() {
  local ref=$1 file=$2; shift 2
  umount_below "$work/mnt"
  oc dpu service del --name "$N" --service images --force >/dev/null 2>&1 || true
  umount_below "/run/offcore/$N/images"; rm -rf "/var/cache/offcore/$N"
  oc image attach "$ref" --node "$N" --catalog "$CAT" --no-prefetch "$@" --json > "$work/attach.json"
  mkdir -p "$work/mnt/l0"; mount -t erofs -o ro "$(jq -r '.[0].file' "$work/attach.json")" "$work/mnt/l0"
  sha256sum "$work/mnt/l0/$file" | cut -d' ' -f1
}

step "basic auth over HTTPS: a registry with htpasswd and a certificate from our CA"
oc fabric host add "regb$ID" >/dev/null; cleanup "\"$OFFCORE\" fabric host del regb$ID"
RB_IP=$(host_ip "regb$ID"); RB=$RB_IP:5000
printf 'subjectAltName=IP:%s\n' "$RB_IP" > "$work/san.ext"
openssl req -newkey rsa:2048 -nodes -keyout "$work/srv.key" -out "$work/srv.csr" -subj "/CN=$RB_IP" 2>/dev/null
openssl x509 -req -in "$work/srv.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -out "$work/srv.pem" -days 2 -extfile "$work/san.ext" 2>/dev/null
htpasswd -Bbn alice s3cret > "$work/htpasswd"
mkdir -p "$work/rb"
cat > "$work/rb/config.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $work/rb/storage}, delete: {enabled: true}}
http: {addr: "$RB", tls: {certificate: $work/srv.pem, key: $work/srv.key}}
auth: {htpasswd: {realm: offcore-basic, path: $work/htpasswd}}
YML
serve "regb$ID" "$work/rb/registry.log" docker-registry serve "$work/rb/config.yml"
wait_http "https://$RB/v2/" --cacert "$work/ca.pem"
mkdir -p "$work/certs"; cp "$work/ca.pem" "$work/certs/ca.crt"
skopeo copy -q --dest-cert-dir "$work/certs" --dest-creds alice:s3cret "oci:$work/layout:v1" "docker://$RB/auth:v1"

expect_fail "$RB" oc image convert "$RB/auth:v1" --to registry --dest "$RB/auth:lazy" --catalog "$CAT"
err=$(oc image convert "$RB/auth:v1" --to registry --dest "$RB/auth:lazy" --catalog "$CAT" 2>&1 >/dev/null || true)
[[ "$err" == *certificate* ]] || fail "without --ca-file the error does not say it is the certificate: $err"
expect_fail "registry $RB needs a username and password" \
  env HOME="$work" "$OFFCORE" image convert "$RB/auth:v1" --to registry --dest "$RB/auth:lazy" --catalog "$CAT" \
  --ca-file "$work/ca.pem"
expect_fail "registry $RB refused the credentials" \
  oc image convert "$RB/auth:v1" --to registry --dest "$RB/auth:lazy" --catalog "$CAT" --ca-file "$work/ca.pem" \
  --creds "$work/bad.json"
oc image convert "$RB/auth:v1" --to registry --dest "$RB/auth:lazy" --catalog "$CAT" --ca-file "$work/ca.pem" \
  --creds "$work/creds.json" --no-prefetch-list >/dev/null
want=$(sha256sum "$img/data/one" | cut -d' ' -f1)
got=$(read_lazy "$RB/auth:v1" data/one --creds "$work/creds.json" --ca-file "$work/ca.pem")
[ "$got" = "$want" ] || fail "a lazy read through the basic-auth registry gave $got"

step "credentials from Docker's config.json (DOCKER_CONFIG)"
mkdir -p "$work/docker"
printf '{"auths": {"https://%s": {"auth": "%s"}}}\n' "$RB" "$(printf alice:s3cret | base64)" > "$work/docker/config.json"
DOCKER_CONFIG=$work/docker oc image convert "$RB/auth:v1" --to registry --dest "$RB/auth:lazy2" --catalog "$CAT" \
  --ca-file "$work/ca.pem" --no-prefetch-list >/dev/null || fail "convert with Docker's config.json failed"

step "bearer tokens: a registry that trusts our token service, tokens that live 3 s"
oc fabric host add "regt$ID" >/dev/null; cleanup "\"$OFFCORE\" fabric host del regt$ID"
RT_IP=$(host_ip "regt$ID"); RT=$RT_IP:5000
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/tok.key" -out "$work/tok.pem" -days 2 \
  -subj /CN=offcore-token 2>/dev/null
mkdir -p "$work/rt"
cat > "$work/rt/config.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $work/rt/storage}, delete: {enabled: true}}
http: {addr: "$RT"}
auth:
  token: {realm: "http://$RT_IP:5001/token", service: offcore-test, issuer: offcore-test-issuer,
          rootcertbundle: $work/tok.pem}
YML
: > "$work/tokens"
serve "regt$ID" "$work/rt/token.log" python3 "$IMG_DIR/token_server.py" "$RT_IP" 5001 "$work/tok.key" \
  "$work/tok.pem" alice s3cret 3 "$work/tokens"
serve "regt$ID" "$work/rt/registry.log" docker-registry serve "$work/rt/config.yml"
wait_http "http://$RT_IP:5001/token"
wait_http "http://$RT/v2/"
skopeo copy -q --dest-tls-verify=false --dest-creds alice:s3cret "oci:$work/layout:v1" "docker://$RT/auth:v1"
expect_fail "refused the credentials" oc image convert "$RT/auth:v1" --to registry --dest "$RT/auth:lazy" \
  --plain-http --catalog "$CAT" --creds "$work/bad.json"
: > "$work/tokens"
oc image convert "$RT/auth:v1" --to registry --dest "$RT/auth:lazy" --plain-http --catalog "$CAT" \
  --creds "$work/creds.json" --no-prefetch-list >/dev/null
assert_cmp "$(wc -l < "$work/tokens")" ">=" 1 "the converter fetched no token"
want=$(sha256sum "$img/data/one" | cut -d' ' -f1)
got=$(read_lazy "$RT/auth:v1" data/one --creds "$work/creds.json" --plain-http)
[ "$got" = "$want" ] || fail "a lazy read through the token registry gave $got"
before=$(wc -l < "$work/tokens")
sleep 4  # the service's token has expired
want=$(sha256sum "$img/data/two" | cut -d' ' -f1)
got=$(sha256sum "$work/mnt/l0/data/two" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "a read after the token expired gave $got"
assert_cmp "$(wc -l < "$work/tokens")" ">" "$before" "no new token was fetched after the old one expired"
