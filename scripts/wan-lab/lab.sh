#!/bin/bash
# lab.sh: a two-host WAN lab in network namespaces (issue 21).
#
#   [PREFIX-a] a0 ==tbf==> ra [PREFIX-r: delay ra<->rb] rb <==tbf== b0 [PREFIX-b]
#    10.210.0.1/24                                                  10.210.0.2/24
#    fd21:b::1/64                                                   fd21:b::2/64
#
# Host a and host b share one Ethernet segment through the router namespace,
# where `delay` (delay.c, compiled on first use) bridges frames between its
# two veth ends and holds each one for RTT/2: a packet-level delay, so TCP on
# a and b sees the real round trip, over IPv4 and IPv6 alike (every host is
# dual stack; `up` measures a TCP connect over each). Each host's egress is paced by `tbf` at
# the link rate (the kernels here have tbf/htb/pfifo, not netem). The hosts'
# TCP buffer limits (net.ipv4.tcp_rmem/tcp_wmem, per namespace) are raised to
# 64 MiB so that the kernel's autotuning can open a window of the
# bandwidth-delay product (see docs/BENCHMARKS.md); WAN_LAB_SYSCTL=0 keeps the
# machine's defaults instead. WAN_LAB_CC=NAME sets the hosts' default TCP
# congestion control (net.ipv4.tcp_congestion_control, per namespace: what
# every program there uses unless it sets its own, libtorrent included);
# unset, a new namespace takes the kernel's built-in default (which is
# `bbr` on some kernels, `cubic` on most distributions': see
# docs/BENCHMARKS.md, "Long fat links").
#
# Usage (root):
#   scripts/wan-lab/lab.sh up RTT_MS RATE_MBIT   # build (or rebuild) the lab
#   scripts/wan-lab/lab.sh exec a|b CMD...       # run CMD on a host
#   scripts/wan-lab/lab.sh status                # qdisc counters, delay pid
#   scripts/wan-lab/lab.sh down                  # remove everything
# Environment: WAN_LAB_PREFIX (default p21b-wan) names the namespaces
# PREFIX-a, PREFIX-b, PREFIX-r; WAN_LAB_DIR (default /tmp/PREFIX) holds the
# delay binary, its pid and its log.
set -euo pipefail

PREFIX=${WAN_LAB_PREFIX:-p21b-wan}
DIR=${WAN_LAB_DIR:-/tmp/$PREFIX}
HERE=$(cd "$(dirname "$0")" && pwd)
A=$PREFIX-a
B=$PREFIX-b
R=$PREFIX-r

die() {
    echo "wan-lab: $*" >&2
    exit 1
}

down() {
    if [[ -f $DIR/delay.pid ]]; then
        local pid
        pid=$(cat "$DIR/delay.pid")
        # Only our own delay process: its pid, and only if it is `delay`.
        if [[ -n $pid && -r /proc/$pid/comm && $(cat "/proc/$pid/comm") == delay ]]; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                [[ -d /proc/$pid ]] || break
                sleep 0.1
            done
        fi
        rm -f "$DIR/delay.pid"
    fi
    for ns in "$A" "$B" "$R"; do
        ip netns del "$ns" 2>/dev/null || true
    done
}

build_delay() {
    mkdir -p "$DIR"
    if [[ ! -x $DIR/delay || $HERE/delay.c -nt $DIR/delay ]]; then
        cc -O2 -pthread -o "$DIR/delay.tmp" "$HERE/delay.c" || die "cannot compile delay.c"
        mv "$DIR/delay.tmp" "$DIR/delay"
    fi
}

up() {
    local rtt=$1 rate=$2
    [[ $rtt =~ ^[0-9]+$ && $rate =~ ^[0-9]+$ && $rate -gt 0 ]] || die "usage: up RTT_MS RATE_MBIT"
    [[ $(id -u) == 0 ]] || die "needs root"
    command -v tc >/dev/null || die "needs tc"
    down
    build_delay
    for ns in "$A" "$B" "$R"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    # Interface names are created in the root namespace first: keep them
    # unique to this lab, then move them.
    ip link add "$PREFIX-a0" type veth peer name "$PREFIX-ra"
    ip link add "$PREFIX-b0" type veth peer name "$PREFIX-rb"
    ip link set "$PREFIX-a0" netns "$A"
    ip link set "$PREFIX-b0" netns "$B"
    ip link set "$PREFIX-ra" netns "$R"
    ip link set "$PREFIX-rb" netns "$R"
    ip netns exec "$R" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$R" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip -n "$R" link set "$PREFIX-ra" up
    ip -n "$R" link set "$PREFIX-rb" up
    local i=1
    for h in a b; do
        local ns=$PREFIX-$h dev=$PREFIX-${h}0
        ip -n "$ns" addr add "10.210.0.$i/24" dev "$dev"
        ip -n "$ns" addr add "fd21:b::$i/64" dev "$dev" nodad
        ip -n "$ns" link set "$dev" up
        if [[ ${WAN_LAB_SYSCTL:-1} == 1 ]]; then
            ip netns exec "$ns" sysctl -qw net.ipv4.tcp_rmem="4096 131072 67108864"
            ip netns exec "$ns" sysctl -qw net.ipv4.tcp_wmem="4096 16384 67108864"
        fi
        if [[ -n ${WAN_LAB_CC:-} ]]; then
            # Outside the initial namespace the kernel lets the default be
            # only an algorithm of net.ipv4.tcp_allowed_congestion_control.
            ip netns exec "$ns" sysctl -qw net.ipv4.tcp_congestion_control="$WAN_LAB_CC" ||
                die "cannot make $WAN_LAB_CC the hosts' default: a namespace may default only to one of" \
                    "tcp_allowed_congestion_control ($(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control))"
        fi
        # The link rate, on the host's egress; a burst of 2 ms of data (at
        # least 128 KiB: veth hands tbf GSO frames of up to 64 KiB).
        local burst=$((rate * 1000000 / 8 / 500))
        ((burst < 131072)) && burst=131072
        ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate "${rate}mbit" \
            burst "$burst" latency 100ms
        i=$((i + 1))
    done
    local one_way
    one_way=$(awk -v r="$rtt" 'BEGIN { printf "%.3f", r / 2 }')
    # The delay line's buffer: a full second of the link each way, 64 MiB
    # at least.
    local mib=$((rate / 8 + 64))
    ip netns exec "$R" "$DIR/delay" "$PREFIX-ra" "$PREFIX-rb" "$one_way" "$mib" \
        >"$DIR/delay.log" 2>&1 &
    echo $! >"$DIR/delay.pid"
    # Ready when a TCP connection crosses (ARP too goes through the delay
    # line); its connect time is the round trip, printed.
    local t
    t=$(rtt_check) || die "no TCP connection across the lab: $(cat "$DIR/delay.log")"
    local cc
    cc=$(ip netns exec "$A" cat /proc/sys/net/ipv4/tcp_congestion_control)
    echo "wan-lab: up: RTT $rtt ms (measured TCP connect ${t% *} ms, over IPv6 ${t#* } ms), $rate Mbit/s, TCP congestion control $cc ($A 10.210.0.1 fd21:b::1 <-> $B 10.210.0.2 fd21:b::2)"
}

# Milliseconds of a TCP connect from a to b (the lab's round trip), over
# IPv4 and then over IPv6: "V4_MS V6_MS". Each family is first waited for
# (ARP and neighbour discovery go through the delay line too).
rtt_check() {
    ip netns exec "$B" /usr/bin/python3 -c '
import socket
s = socket.create_server(("::", 9), family=socket.AF_INET6, dualstack_ipv6=True, backlog=8)
s.settimeout(30)
for _ in range(4):
    c, _ = s.accept(); c.close()
' &
    local srv=$!
    ip netns exec "$A" /usr/bin/python3 -c '
import socket, sys, time
def rtt(host):
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, 9), timeout=3).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        sys.exit("no TCP connection to %s" % host)
    t0 = time.monotonic()
    socket.create_connection((host, 9), timeout=5).close()
    return (time.monotonic() - t0) * 1000
v4 = rtt("10.210.0.2")
v6 = rtt("fd21:b::2")
print("%.1f %.1f" % (v4, v6))
'
    local rc=$?
    wait "$srv" 2>/dev/null || true
    return $rc
}

case ${1:-} in
up)
    shift
    up "${1:-}" "${2:-}"
    ;;
down) down ;;
exec)
    shift
    h=${1:-}
    shift || true
    [[ $h == a || $h == b ]] || die "exec a|b CMD..."
    exec ip netns exec "$PREFIX-$h" "$@"
    ;;
status)
    for h in a b; do
        ip netns exec "$PREFIX-$h" tc -s qdisc show dev "$PREFIX-${h}0" || true
        echo "$h: congestion control $(ip netns exec "$PREFIX-$h" cat /proc/sys/net/ipv4/tcp_congestion_control)"
    done
    [[ -f $DIR/delay.pid ]] && echo "delay pid $(cat "$DIR/delay.pid")"
    ;;
*)
    sed -n '2,33p' "$0"
    exit 2
    ;;
esac
