"""Shared helpers for the libtorrent interop scripts.

Run these scripts with /usr/bin/python3: Debian's python3-libtorrent is only
importable from the system interpreter.
"""

import os
import sys

try:
    import libtorrent as lt
except ImportError as e:  # pragma: no cover - reported to the Rust harness
    sys.stderr.write("libtorrent python binding not importable: %s\n" % e)
    sys.exit(3)


def listen_interface(host, listen_port):
    """libtorrent's listen_interfaces entry: IPv6 hosts go in brackets."""
    if ":" in host:
        return "[%s]:%d" % (host.strip("[]"), listen_port)
    return "%s:%d" % (host, listen_port)


def loopback_settings(listen_port, host="127.0.0.1"):
    """Session settings that make libtorrent behave on 127.0.0.1 (or ::1).

    libtorrent tries uTP first and crawls on loopback, refuses a second
    connection from the same IP by default, and would otherwise talk to the
    outside world (DHT, LSD, UPnP, NAT-PMP).
    """
    return {
        "listen_interfaces": listen_interface(host, listen_port),
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "allow_multiple_connections_per_ip": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "announce_to_all_trackers": False,
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification),
    }


def enable_dht(ses, nodes):
    """Turn libtorrent's DHT on, bootstrapped from `nodes` ("IP:PORT"...).

    Our DHT runs on loopback: let libtorrent keep several nodes of one IP and
    talk to private addresses. Does nothing when `nodes` is empty.
    """
    if not nodes:
        return
    ses.apply_settings({
        "enable_dht": True,
        "dht_bootstrap_nodes": ",".join(nodes),
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
    })
    for n in nodes:
        host, _, port = n.rpartition(":")
        ses.add_dht_node((host, int(port)))


def force_utp(ses):
    """uTP only, both ways: TCP neither dialled nor accepted (BEP 29)."""
    ses.apply_settings({
        "enable_outgoing_utp": True,
        "enable_incoming_utp": True,
        "enable_outgoing_tcp": False,
        "enable_incoming_tcp": False,
    })


def force_encryption(ses):
    """Accept and make only encrypted connections, RC4 payload only.

    (out_enc_policy / in_enc_policy = pe_forced, allowed_enc_level = pe_rc4:
    what "require encryption" means in libtorrent-based clients.)
    """
    ses.apply_settings({
        "out_enc_policy": int(lt.enc_policy.forced),
        "in_enc_policy": int(lt.enc_policy.forced),
        "allowed_enc_level": int(lt.enc_level.rc4),
        "prefer_rc4": True,
    })


def make_session(listen_port, host="127.0.0.1"):
    """A loopback session; with LT_HIGH_PERFORMANCE=1 in the environment the
    loopback settings go over `lt.high_performance_seed()` (benchmarks)."""
    settings = loopback_settings(listen_port, host)
    if os.environ.get("LT_HIGH_PERFORMANCE") == "1":
        base = lt.high_performance_seed()
        base.update(settings)
        settings = base
    return lt.session(settings)


def load_torrent(path):
    return lt.torrent_info(path)


def v1_hash_hex(ti):
    """Hex SHA-1 info-hash (v1) of a torrent_info, across binding versions."""
    try:
        h = ti.info_hashes().v1
    except AttributeError:
        h = ti.info_hash()
    return str(h)


def drain_alerts(ses, verbose=True):
    for a in ses.pop_alerts():
        if verbose and a.category() & lt.alert.category_t.error_notification:
            sys.stderr.write("lt alert: %s\n" % a.message())


def state_name(st):
    return str(st.state).split(".")[-1]
