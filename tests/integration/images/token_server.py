#!/usr/bin/env python3
"""A registry token service for tests (the distribution spec's bearer-token
flow): GET /token?service=S&scope=repository:NAME:ACTIONS with HTTP Basic
credentials answers {"token": JWT, "expires_in": TTL}, the JWT signed (RS256)
by the key whose certificate the registry trusts (rootcertbundle), carried in
the x5c header. Wrong credentials get 401. Every token issued is counted in
COUNT_FILE.
Usage: token_server.py ADDR PORT KEY_PEM CERT_PEM USER PASSWORD TTL COUNT_FILE"""
import base64, json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ADDR, PORT, KEY, CERT, USER, PASSWORD, TTL, COUNT = sys.argv[1:9]
key = serialization.load_pem_private_key(open(KEY, "rb").read(), password=None)
cert = x509.load_pem_x509_certificate(open(CERT, "rb").read())
der = cert.public_bytes(serialization.Encoding.DER)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims):
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + b64url(sig)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if url.path != "/token" or self.headers.get("Authorization") != want:
            self.send_response(401)
            self.end_headers()
            return
        access = []
        for scope in q.get("scope", []):
            parts = scope.split(":")
            if len(parts) == 3 and parts[0] == "repository":
                access.append({"type": "repository", "name": parts[1], "actions": parts[2].split(",")})
        now = int(time.time())
        token = jwt({"iss": "offcore-test-issuer", "sub": USER, "aud": q.get("service", [""])[0],
                     "exp": now + int(TTL), "nbf": now - 5, "iat": now, "jti": os.urandom(8).hex(),
                     "access": access})
        with open(COUNT, "a") as f:
            f.write("token\n")
        body = json.dumps({"token": token, "expires_in": int(TTL)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer((ADDR, int(PORT)), Handler).serve_forever()
