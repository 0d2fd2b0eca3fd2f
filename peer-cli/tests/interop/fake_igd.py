#!/usr/bin/env python3
"""A hostile UPnP gateway for peer-cli/tests/port_map.rs.

Run inside the gateway namespace: answers SSDP M-SEARCHes on 239.255.255.250:1900
(joined on LAN_IP) and serves HTTP on LAN_IP:HTTP_PORT. MODE:

  oversized  every SSDP answer is a 4,000-byte datagram (a valid header, then padding)
  offlan     a valid answer; the description's control URL is on 203.0.113.9, off the LAN
  redirect   a valid answer; the description redirects to /huge, 16 MiB of XML-ish bytes

Prints one line per event to stdout ("ssdp from ...", "http GET /...") so the test can
see what was asked; never exits by itself (the test kills it).
"""
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

MODE, LAN_IP, HTTP_PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])

DESC_OFFLAN = """<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceList><device><deviceList><device>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<controlURL>http://203.0.113.9:80/ctl/IPConn</controlURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>"""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        print(f"http GET {self.path}", flush=True)
        if self.path == "/desc.xml" and MODE == "offlan":
            body = DESC_OFFLAN.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/desc.xml" and MODE == "redirect":
            self.send_response(302)
            self.send_header("Location", "/huge")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/huge":
            size = 16 << 20
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"<service>" + b"x" * 65527
            sent = 0
            try:
                while sent < size:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                print(f"http /huge: client closed after {sent} bytes", flush=True)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_POST(self):
        print(f"http POST {self.path}", flush=True)
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()


def http():
    HTTPServer((LAN_IP, HTTP_PORT), Handler).serve_forever()


threading.Thread(target=http, daemon=True).start()

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 1900))
mreq = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(LAN_IP))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(4096)
    if not data.startswith(b"M-SEARCH"):
        continue
    print(f"ssdp from {peer[0]}", flush=True)
    head = (
        "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n"
        "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
        f"LOCATION: http://{LAN_IP}:{HTTP_PORT}/desc.xml\r\n"
    )
    if MODE == "oversized":
        reply = (head + "X-PAD: ").encode() + b"a" * 4000 + b"\r\n\r\n"
    else:
        reply = (head + "\r\n").encode()
    s.sendto(reply, peer)
