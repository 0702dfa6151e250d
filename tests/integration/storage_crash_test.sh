#!/usr/bin/env bash
# Crash safety: writes through an attached disk, the gateway killed with
# SIGKILL at a random moment, restarted; every write that was acknowledged
# must read back, and fsck must be clean. KILLS rounds (default 20).
source "$(dirname "$0")/lib.sh"
KILLS=${KILLS:-20}
N=sc$ID
H=gc$ID
work=$(mktemp -d /tmp/oc-sc-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
gateway_up "$H" "$work/data"
node_up "$N" --host-netns "h$N"
oc volume create cv --size 64M --target "$H" >/dev/null
oc disk attach "nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:cv" --node "$N" --name cv --io-timeout 60 >/dev/null
disk=/run/offcore/$N/disks/cv
acked=$work/acked
: > "$acked"

# Each write is one 4 KiB block whose content names the round and block;
# a line in $acked is added only after dd returned success (O_DIRECT|O_DSYNC).
block_data() { printf 'round %05d block %05d ' "$1" "$2" | head -c 4096; }
writer() {
  local round=$1 n=0
  while [ -e "$work/run.$round" ]; do
    local blk=$(( (RANDOM * 32768 + RANDOM) % 16384 ))
    if block_data "$round" "$blk" | dd of="$disk" bs=4096 seek="$blk" count=1 conv=notrunc,sync \
         oflag=direct,dsync iflag=fullblock status=none 2>/dev/null; then
      echo "$blk $round" >> "$acked"
      n=$((n + 1))
    fi
  done
}

for round in $(seq 1 "$KILLS"); do
  touch "$work/run.$round"
  writer "$round" &
  wpid=$!
  sleep "0.$(( RANDOM % 6 + 2 ))"
  kill -9 "$GW_PID"
  wait "$GW_PID" 2>/dev/null || true
  sleep 0.2
  gateway_start "$H" "$work/data"   # the disk's initiator reconnects by itself
  sleep 0.3
  rm -f "$work/run.$round"
  wait "$wpid"
done
echo "$(wc -l < "$acked") acknowledged writes over $KILLS kills"

step "every acknowledged write reads back (the last one per block wins)"
declare -A last
while read -r blk round; do last[$blk]=$round; done < "$acked"
bad=0
for blk in "${!last[@]}"; do
  want=$(block_data "${last[$blk]}" "$blk" | head -c 23)
  got=$(dd if="$disk" bs=4096 skip="$blk" count=1 iflag=direct status=none | head -c 23)
  [ "$got" = "$want" ] || { echo "block $blk: got '$got', want '$want'"; bad=$((bad + 1)); }
done
[ "$bad" -eq 0 ] || fail "$bad acknowledged writes lost"
assert_cmp "${#last[@]}" ">" 50 "blocks written"

step "fsck after a final SIGKILL"
kill -9 "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; GW_PID=
oc target fsck --data "$work/data"

step "the killed gateway's run dir is swept by the next look"
[ -d "/run/offcore/targets/$H" ] || fail "expected the SIGKILLed gateway's run dir to remain until a sweep"
oc target list >/dev/null
[ ! -e "/run/offcore/targets/$H" ] || fail "target list left the dead gateway's run dir behind"
