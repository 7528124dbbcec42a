#!/usr/bin/env bash
# The test bed itself: hosts reach each other only through the switch, a
# sim host and a swtpm run per host, and teardown removes every namespace
# and process of a run even when the run is killed, and nothing of another.
set -u
. "$SMG_SRC/test/net/netbed.sh"
nb_init
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# A bystander namespace with a name close to ours must survive our teardown.
other="${NB_P}x-other"
ip netns add "$other" || { echo "FAIL: ip netns add"; exit 1; }

# A child run that sets the bed up, starts processes, then is killed.
cat >"$NB_TMP/child.sh" <<CHILD
. "$SMG_SRC/test/net/netbed.sh"
nb_init
nb_up || exit 1
nb_sim_host src "$SECMIG" || exit 1
nb_bg dst "\$NB_TMP/sleep" sleep 600
echo "\$NB_P \$NB_PID \$(pgrep -P \$\$ | tr '\n' ' ')" >"$NB_TMP/child.info"
while :; do sleep 0.1; done
CHILD
bash "$NB_TMP/child.sh" &
child=$!
for _ in $(seq 200); do [ -s "$NB_TMP/child.info" ] && break; sleep 0.05; done
read -r cp cpid _ <"$NB_TMP/child.info" || bad "child bed did not come up"
ip netns list | grep -q "^$cp-src" || bad "child namespaces missing"
kill -TERM "$child"
wait "$child"
rc=$?
[ $rc = 143 ] || bad "killed run exited $rc, want 143"
ip netns list | grep -q "^$cp-" && bad "namespaces left after TERM: $(ip netns list | grep "^$cp-")"
kill -0 "$cpid" 2>/dev/null && bad "process $cpid left after TERM"
ip netns list | grep -q "^$other" || bad "teardown touched a namespace it did not create"
ip netns del "$other"

# Our own bed: isolation and per-host daemons.
nb_up || { echo "FAIL: bed"; exit 1; }
nb_exec src ping -c 1 -W 1 "$NB_DST4" >/dev/null || bad "src cannot reach dst"
nb_exec src ping -c 1 -W 1 "$NB_DST6" >/dev/null || bad "src cannot reach dst over IPv6"
nb_exec src ip link show sw-src >/dev/null 2>&1 && bad "switch port visible in src"
nb_exec sw ip link show uplink >/dev/null 2>&1 && bad "host uplink visible in switch"
nb_sim_host src "$SECMIG" || bad "sim host in src"
src_sim=$NB_SIM_DIR
nb_sim_host dst "$SECMIG" || bad "sim host in dst"
nb_exec src "$SECMIG" sim --state-dir "$src_sim" list >/dev/null || bad "sim list in src"
nb_swtpm src
case $? in
0) nb_exec src bash -c 'exec 3<>/dev/tcp/127.0.0.1/2321' || bad "swtpm not reachable in src"
   bash -c 'exec 3<>/dev/tcp/127.0.0.1/2321' 2>/dev/null && bad "src swtpm visible outside" ;;
77) echo "swtpm not installed: not checked" ;;
*) bad "swtpm in src" ;;
esac
[ $fail = 0 ] && echo "netbed: all checks passed"
exit $fail
