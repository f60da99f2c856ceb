"""RSA keys as the payment channels hand them out: PEM (PKCS#1 or PKCS#8, ``PUBLIC KEY`` or
``RSA PUBLIC KEY``), an X.509 certificate, or the bare base64 Alipay's key tool prints."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An RSA private key as PEM (PKCS#1 or PKCS#8) or as the bare base64 the Alipay key
    tool prints."""
    data = text.strip()
    key: object
    if data.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(data.encode("ascii"), password=None)
    else:
        key = serialization.load_der_private_key(base64.b64decode("".join(data.split())), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key as PEM (``PUBLIC KEY`` or ``RSA PUBLIC KEY``), an X.509
    certificate, or bare base64 (SubjectPublicKeyInfo, as Alipay shows it)."""
    data = text.strip()
    key: object
    if "BEGIN CERTIFICATE" in data:
        key = x509.load_pem_x509_certificate(data.encode("ascii")).public_key()
    elif data.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(data.encode("ascii"))
    else:
        key = serialization.load_der_public_key(base64.b64decode("".join(data.split())))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key
