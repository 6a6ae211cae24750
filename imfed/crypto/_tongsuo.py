"""Tongsuo's libssl, as the ``tongsuopy`` wheel carries it, behind a pyOpenSSL-shaped Connection.

The wheel links all of Tongsuo 8.3.2 (a fork of OpenSSL 1.1.1) statically into
``tongsuopy/backends/_tongsuo.abi3.so`` and exports its symbols; tongsuopy's own binding declares
only libcrypto.  We declare the libssl calls we need here and reach them with cffi's ABI mode
(``dlopen`` of that same file): the RFC 8998 suites (``TLS_SM4_GCM_SM3``) and TLCP (``NTLS``, two
certificates) are in it.

``Connection`` has the small part of pyOpenSSL's ``SSL.Connection`` that Twisted's
``TLSMemoryBIOProtocol`` drives (memory BIOs: ``bio_write``/``bio_read``, ``do_handshake``,
``recv``/``send``, ``shutdown``) and raises pyOpenSSL's own exception classes, so Twisted's TLS
machinery runs it unchanged.  Nothing outside ``imfed/crypto/`` imports this module.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import cffi
from OpenSSL import SSL as _pyssl

__all__ = ["Context", "Connection", "TLSLibraryError", "version"]

_CDEF = """
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_method_st SSL_METHOD;
typedef struct ssl_cipher_st SSL_CIPHER;
typedef struct bio_st BIO;
typedef struct bio_method_st BIO_METHOD;
typedef struct x509_st X509;
typedef struct x509_store_st X509_STORE;
typedef struct x509_store_ctx_st X509_STORE_CTX;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct stack_st OPENSSL_STACK;

const char *OpenSSL_version(int);

const SSL_METHOD *TLS_method(void);
const SSL_METHOD *NTLS_method(void);
SSL_CTX *SSL_CTX_new(const SSL_METHOD *);
void SSL_CTX_free(SSL_CTX *);
long SSL_CTX_ctrl(SSL_CTX *, int, long, void *);
unsigned long SSL_CTX_set_options(SSL_CTX *, unsigned long);
int SSL_CTX_set_num_tickets(SSL_CTX *, size_t);
int SSL_CTX_set_ciphersuites(SSL_CTX *, const char *);
int SSL_CTX_set_cipher_list(SSL_CTX *, const char *);
void SSL_CTX_enable_ntls(SSL_CTX *);
void SSL_CTX_enable_sm_tls13_strict(SSL_CTX *);
int SSL_CTX_use_certificate(SSL_CTX *, X509 *);
int SSL_CTX_use_PrivateKey(SSL_CTX *, EVP_PKEY *);
int SSL_CTX_use_sign_certificate(SSL_CTX *, X509 *);
int SSL_CTX_use_sign_PrivateKey(SSL_CTX *, EVP_PKEY *);
int SSL_CTX_use_enc_certificate(SSL_CTX *, X509 *);
int SSL_CTX_use_enc_PrivateKey(SSL_CTX *, EVP_PKEY *);
int SSL_CTX_check_private_key(const SSL_CTX *);
X509_STORE *SSL_CTX_get_cert_store(const SSL_CTX *);
void SSL_CTX_set_verify(SSL_CTX *, int, int (*)(int, X509_STORE_CTX *));
void SSL_set_verify(SSL *, int, int (*)(int, X509_STORE_CTX *));
int X509_STORE_add_cert(X509_STORE *, X509 *);

SSL *SSL_new(SSL_CTX *);
void SSL_free(SSL *);
long SSL_ctrl(SSL *, int, long, void *);
void SSL_set_bio(SSL *, BIO *, BIO *);
void SSL_set_connect_state(SSL *);
void SSL_set_accept_state(SSL *);
int SSL_do_handshake(SSL *);
int SSL_read(SSL *, void *, int);
int SSL_write(SSL *, const void *, int);
int SSL_shutdown(SSL *);
int SSL_get_error(const SSL *, int);
int SSL_pending(const SSL *);
int SSL_is_ntls(const SSL *);
const char *SSL_get_version(const SSL *);
const SSL_CIPHER *SSL_get_current_cipher(const SSL *);
const char *SSL_CIPHER_get_name(const SSL_CIPHER *);
X509 *SSL_get_peer_certificate(const SSL *);
OPENSSL_STACK *SSL_get_peer_cert_chain(const SSL *);
int SSL_get_ex_data_X509_STORE_CTX_idx(void);
void *X509_STORE_CTX_get_ex_data(X509_STORE_CTX *, int);
X509 *X509_STORE_CTX_get_current_cert(X509_STORE_CTX *);
int X509_STORE_CTX_get_error_depth(X509_STORE_CTX *);
int X509_STORE_CTX_get_error(X509_STORE_CTX *);
const char *X509_verify_cert_error_string(long);

int OPENSSL_sk_num(const OPENSSL_STACK *);
void *OPENSSL_sk_value(const OPENSSL_STACK *, int);

const BIO_METHOD *BIO_s_mem(void);
BIO *BIO_new(const BIO_METHOD *);
BIO *BIO_new_mem_buf(const void *, int);
int BIO_free(BIO *);
int BIO_read(BIO *, void *, int);
int BIO_write(BIO *, const void *, int);
long BIO_ctrl(BIO *, int, long, void *);

X509 *d2i_X509(X509 **, const unsigned char **, long);
int i2d_X509(X509 *, unsigned char **);
void X509_free(X509 *);
EVP_PKEY *PEM_read_bio_PrivateKey(BIO *, EVP_PKEY **, void *, void *);
void EVP_PKEY_free(EVP_PKEY *);

unsigned long ERR_get_error(void);
void ERR_clear_error(void);
const char *ERR_lib_error_string(unsigned long);
const char *ERR_func_error_string(unsigned long);
const char *ERR_reason_error_string(unsigned long);
void CRYPTO_free(void *, const char *, int);
"""

# Constants of Tongsuo 8.3 (OpenSSL 1.1.1 numbering).
SSL_CTRL_MODE = 33
SSL_CTRL_SET_SESS_CACHE_MODE = 44
SSL_SESS_CACHE_OFF = 0
SSL_CTRL_SET_TLSEXT_HOSTNAME = 55
SSL_CTRL_SET_GROUPS_LIST = 92
SSL_CTRL_SET_SIGALGS_LIST = 98
SSL_CTRL_SET_MIN_PROTO_VERSION = 123
SSL_CTRL_SET_MAX_PROTO_VERSION = 124
SSL_MODE_ENABLE_PARTIAL_WRITE = 0x1
SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2
SSL_MODE_RELEASE_BUFFERS = 0x10
SSL_OP_NO_TICKET = 0x00004000
SSL_OP_NO_COMPRESSION = 0x00020000
SSL_OP_CIPHER_SERVER_PREFERENCE = 0x00400000
SSL_OP_NO_RENEGOTIATION = 0x40000000
SSL_VERIFY_NONE = 0
SSL_VERIFY_PEER = 1
SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 2
TLS1_2_VERSION = 0x0303
TLS1_3_VERSION = 0x0304
BIO_CTRL_PENDING = 10
BIO_C_SET_BUF_MEM_EOF_RETURN = 130
_ERROR_SSL, _WANT_READ, _WANT_WRITE, _SYSCALL, _ZERO_RETURN = 1, 2, 3, 5, 6

_ffi = cffi.FFI()
_ffi.cdef(_CDEF)
_lib = None
_lock = threading.Lock()
# Records are read into one buffer, then copied out: TLS runs on the reactor thread alone.
_BUFFER_SIZE = 1 << 16
_buffer = _ffi.new("char[]", _BUFFER_SIZE)


def _load():
    global _lib
    if _lib is None:
        with _lock:
            if _lib is None:
                from tongsuopy.backends import _tongsuo  # the wheel's own extension module

                _lib = _ffi.dlopen(_tongsuo.__file__)
    return _lib


def _read_buffer(size: int):
    return _buffer if size <= _BUFFER_SIZE else _ffi.new("char[]", size)


class TLSLibraryError(Exception):
    """A call into the TLS library failed outside a connection (a context, a key, a cert)."""


def version() -> str:
    """The library's own version string (Tongsuo says ``OpenSSL 1.1.1h`` and its own)."""
    return _ffi.string(_load().OpenSSL_version(0)).decode()


def _errors() -> list[tuple[str, str, str]]:
    """Drain the thread's error queue, as pyOpenSSL does: (library, function, reason)."""
    lib = _load()
    out: list = []
    while True:
        code = lib.ERR_get_error()
        if not code:
            return out
        out.append(tuple(_text(f(code)) for f in (lib.ERR_lib_error_string,
                                                   lib.ERR_func_error_string,
                                                   lib.ERR_reason_error_string)))


def _text(p) -> str:
    return _ffi.string(p).decode("ascii", "replace") if p != _ffi.NULL else ""


def _check(ok, what: str) -> None:
    if not ok:
        raise TLSLibraryError("%s: %s" % (what, _errors() or "failed"))


def _x509(der: bytes):
    lib = _load()
    buf = _ffi.new("unsigned char[]", der)
    ptr = _ffi.new("unsigned char **", buf)
    x = lib.d2i_X509(_ffi.NULL, _ffi.cast("const unsigned char **", ptr), len(der))
    _check(x != _ffi.NULL, "cannot load certificate")
    return _ffi.gc(x, lib.X509_free)


def _der(x509) -> bytes:
    lib = _load()
    out = _ffi.new("unsigned char **")
    n = lib.i2d_X509(x509, out)
    if n <= 0:
        return b""
    try:
        return bytes(_ffi.buffer(out[0], n))
    finally:
        lib.CRYPTO_free(out[0], b"imfed", 0)


def _pkey(pem: bytes):
    lib = _load()
    bio = lib.BIO_new_mem_buf(pem, len(pem))
    _check(bio != _ffi.NULL, "cannot read key")
    try:
        key = lib.PEM_read_bio_PrivateKey(bio, _ffi.NULL, _ffi.NULL, _ffi.NULL)
    finally:
        lib.BIO_free(bio)
    _check(key != _ffi.NULL, "cannot load private key")
    return _ffi.gc(key, lib.EVP_PKEY_free)


# --- verification: one C callback for every context, dispatching to the connection's own ----

_connections: "weakref.WeakValueDictionary[int, Connection]" = weakref.WeakValueDictionary()
"""The connections being verified, by their SSL's address: weak, so that a connection
Twisted is done with is freed (``__del__``) with its SSL."""


@_ffi.callback("int(int, X509_STORE_CTX *)")
def _verify_callback(ok, store_ctx):
    lib = _load()
    try:
        ssl = lib.X509_STORE_CTX_get_ex_data(store_ctx, lib.SSL_get_ex_data_X509_STORE_CTX_idx())
        conn = _connections.get(int(_ffi.cast("uintptr_t", ssl)))
        if conn is None or conn._verify is None:
            return 0
        der = _der(lib.X509_STORE_CTX_get_current_cert(store_ctx))
        depth = lib.X509_STORE_CTX_get_error_depth(store_ctx)
        errno = lib.X509_STORE_CTX_get_error(store_ctx)
        if not ok:
            conn.verify_error = _text(lib.X509_verify_cert_error_string(errno))
        return 1 if conn._verify(conn, der, errno, depth, bool(ok)) else 0
    except Exception:  # never let an exception cross into C; refuse instead
        return 0


class Context:
    """An SSL_CTX: one per (identity, policy, protocol), shared by its connections."""

    def __init__(self, ntls_only: bool = False) -> None:
        lib = _load()
        ctx = lib.SSL_CTX_new(lib.NTLS_method() if ntls_only else lib.TLS_method())
        _check(ctx != _ffi.NULL, "cannot create a TLS context")
        self._ctx = _ffi.gc(ctx, lib.SSL_CTX_free)
        self._keep: list = []  # keys and certificates the context refers to
        lib.SSL_CTX_set_options(self._ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                                | SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE)
        lib.SSL_CTX_ctrl(self._ctx, SSL_CTRL_MODE, SSL_MODE_ENABLE_PARTIAL_WRITE
                         | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS,
                         _ffi.NULL)
        lib.SSL_CTX_set_verify(self._ctx, SSL_VERIFY_NONE, _ffi.NULL)
        # No resumption of any kind: every connection is a full handshake with certificates.
        lib.SSL_CTX_ctrl(self._ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, _ffi.NULL)
        lib.SSL_CTX_set_num_tickets(self._ctx, 0)
        if ntls_only:
            # Tongsuo runs its TLCP state machine only where NTLS is enabled, and then only for
            # a connection it knows to be TLCP: with NTLS_method, every one.
            lib.SSL_CTX_enable_ntls(self._ctx)

    def _ctrl_text(self, op: int, value: str, what: str) -> None:
        _check(_load().SSL_CTX_ctrl(self._ctx, op, 0, _ffi.new("char[]", value.encode())) == 1,
               what)

    def set_versions(self, low: int, high: int) -> None:
        lib = _load()
        _check(lib.SSL_CTX_ctrl(self._ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, low, _ffi.NULL) == 1
               and lib.SSL_CTX_ctrl(self._ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, high,
                                    _ffi.NULL) == 1, "cannot set protocol versions")

    def set_ciphersuites(self, names: str) -> None:
        """TLS 1.3 suites, in order."""
        _check(_load().SSL_CTX_set_ciphersuites(self._ctx, names.encode()) == 1,
               "cannot set TLS 1.3 suites %s" % names)

    def set_cipher_list(self, names: str) -> None:
        """TLCP (and TLS 1.2) suites, in order."""
        _check(_load().SSL_CTX_set_cipher_list(self._ctx, names.encode()) == 1,
               "cannot set suites %s" % names)

    def set_groups(self, names: str) -> None:
        self._ctrl_text(SSL_CTRL_SET_GROUPS_LIST, names, "cannot set groups %s" % names)

    def set_sigalgs(self, names: str) -> None:
        self._ctrl_text(SSL_CTRL_SET_SIGALGS_LIST, names, "cannot set signature algorithms")

    def use_certificate(self, cert_der: bytes, key_pem: bytes) -> None:
        """The TLS 1.3 certificate and key (our signing pair)."""
        lib = _load()
        x, k = _x509(cert_der), _pkey(key_pem)
        _check(lib.SSL_CTX_use_certificate(self._ctx, x) == 1, "cannot use certificate")
        _check(lib.SSL_CTX_use_PrivateKey(self._ctx, k) == 1, "cannot use private key")
        _check(lib.SSL_CTX_check_private_key(self._ctx) == 1, "key does not match certificate")
        self._keep += [x, k]

    def use_tlcp_certificates(self, sign_der: bytes, sign_key_pem: bytes, enc_der: bytes,
                              enc_key_pem: bytes) -> None:
        """TLCP's two pairs: signing and encryption."""
        lib = _load()
        sx, sk, ex, ek = (_x509(sign_der), _pkey(sign_key_pem), _x509(enc_der),
                          _pkey(enc_key_pem))
        _check(lib.SSL_CTX_use_sign_certificate(self._ctx, sx) == 1, "cannot use sign cert")
        _check(lib.SSL_CTX_use_sign_PrivateKey(self._ctx, sk) == 1, "cannot use sign key")
        _check(lib.SSL_CTX_use_enc_certificate(self._ctx, ex) == 1, "cannot use enc cert")
        _check(lib.SSL_CTX_use_enc_PrivateKey(self._ctx, ek) == 1, "cannot use enc key")
        self._keep += [sx, sk, ex, ek]

    def trust(self, ca_der: bytes) -> None:
        x = _x509(ca_der)
        _check(_load().X509_STORE_add_cert(_load().SSL_CTX_get_cert_store(self._ctx), x) == 1,
               "cannot add CA")
        self._keep.append(x)


class Connection:
    """One TLS connection over two memory BIOs, driven by Twisted's TLSMemoryBIOProtocol.

    A client connection speaks what its context speaks.  A server connection is given a TLS
    context and, optionally, a TLCP one, and picks by the record version of the first bytes it
    receives (0x0101 is TLCP): Tongsuo's own same-port detection peeks at a socket, which a
    memory BIO is not.

    ``verify(conn, der, errno, depth, ok) -> bool`` is asked about each certificate of the
    peer's chain (as OpenSSL's verify callback is); ``None`` verifies nothing.
    """

    verify_error: str | None = None
    _ssl = None
    _eof = False

    negotiated: Any = None  # set by whoever watches the handshake (tls.Negotiated)
    refusal: str | None = None  # why our own checks refused the peer

    def __init__(self, context: Context, verify=None, require_peer: bool = True,
                 tlcp_context: Context | None = None, done=None, failed=None) -> None:
        """``done(conn)`` is called once the handshake completes and may refuse it by
        raising; ``failed(conn, error)`` once if it fails."""
        self._done, self._failed = done, failed
        self._finished = False
        self._contexts = (context, tlcp_context)
        self._verify, self._require_peer = verify, require_peer
        self._app_data = None
        self._server: bool | None = None
        self._early = b""  # a server's first bytes, until they say which protocol

    def _start(self, context: Context) -> None:
        lib = _load()
        self._context = context  # the SSL_CTX outlives its SSLs
        ssl = lib.SSL_new(context._ctx)
        _check(ssl != _ffi.NULL, "cannot create a TLS connection")
        self._ssl = ssl
        self._key = int(_ffi.cast("uintptr_t", ssl))
        self._in, self._out = lib.BIO_new(lib.BIO_s_mem()), lib.BIO_new(lib.BIO_s_mem())
        # An empty read BIO is "try again", not EOF, until bio_shutdown.
        lib.BIO_ctrl(self._in, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, _ffi.NULL)
        lib.BIO_ctrl(self._out, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, _ffi.NULL)
        lib.SSL_set_bio(ssl, self._in, self._out)  # the SSL owns both BIOs now
        if self._verify is not None:
            mode = SSL_VERIFY_PEER | (SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                      if self._require_peer else 0)
            _connections[self._key] = self
            lib.SSL_set_verify(ssl, mode, _verify_callback)
        if self._server:
            lib.SSL_set_accept_state(ssl)
        else:
            lib.SSL_set_connect_state(ssl)

    def __del__(self) -> None:
        ssl, self._ssl = self._ssl, None
        if ssl is not None and _lib is not None:  # (at exit the module may be gone first)
            _connections.pop(self._key, None)
            _lib.SSL_free(ssl)

    # -- pyOpenSSL's Connection, the part Twisted uses ------------------------------------

    def set_connect_state(self) -> None:
        if self._server is None:
            self._server = False
            self._start(self._contexts[0])

    def set_accept_state(self) -> None:
        if self._server is None:
            self._server = True
            if self._contexts[1] is None:
                self._start(self._contexts[0])

    def _sniff(self, data: bytes) -> bytes:
        """A server's first bytes: hold them until the record header says TLCP or TLS."""
        self._early += data
        if len(self._early) < 3:
            return b""
        tlcp = self._early[1:3] == b"\x01\x01"
        self._start(self._contexts[1] if tlcp else self._contexts[0])
        data, self._early = self._early, b""
        return data

    def set_tlsext_host_name(self, name: bytes) -> None:
        _load().SSL_ctrl(self._ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, 0, _ffi.new("char[]", name))

    def set_app_data(self, data) -> None:
        self._app_data = data

    def get_app_data(self):
        return self._app_data

    def _not_started(self):
        if self._eof:
            raise _pyssl.SysCallError(-1, "Unexpected EOF")
        raise _pyssl.WantReadError()

    def _raise(self, result: int):
        lib = _load()
        code = lib.SSL_get_error(self._ssl, result)
        if code == _WANT_READ:
            raise _pyssl.WantReadError()
        if code == _WANT_WRITE:
            raise _pyssl.WantWriteError()
        if code == _ZERO_RETURN:
            raise _pyssl.ZeroReturnError()
        errors = _errors()
        if code == _SYSCALL and not errors:
            raise _pyssl.SysCallError(-1, "Unexpected EOF")
        raise _pyssl.Error(errors or [("SSL routines", "", "unknown error %d" % code)])

    def do_handshake(self) -> None:
        if self.refusal is not None and self._finished:
            raise _pyssl.Error([("imfed", "handshake", self.refusal)])
        try:
            if self._ssl is None:
                self._not_started()
            r = _load().SSL_do_handshake(self._ssl)
            if r != 1:
                self._raise(r)
        except _pyssl.WantReadError:
            raise
        except _pyssl.Error as e:
            self._report_failure(e)
            raise
        if not self._finished:
            self._finished = True
            if self._done is not None:
                try:
                    self._done(self)
                except Exception as e:
                    self.refusal = str(e) or type(e).__name__
                    error = _pyssl.Error([("imfed", "handshake", self.refusal)])
                    self._report_failure(error)
                    raise error from None

    def _report_failure(self, error: Exception) -> None:
        failed, self._failed = self._failed, None
        if failed is not None:
            try:
                failed(self, error)
            except Exception:
                pass

    def bio_write(self, data: bytes) -> int:
        if self._ssl is None:
            size, data = len(data), self._sniff(data)
            if not data:
                return size
        n = _load().BIO_write(self._in, data, len(data))
        if n <= 0:
            raise _pyssl.Error([("BIO routines", "", "cannot buffer received bytes")])
        return n

    def bio_read(self, size: int) -> bytes:
        if self._ssl is None:
            raise _pyssl.WantReadError()
        buf = _read_buffer(size)
        n = _load().BIO_read(self._out, buf, size)
        if n <= 0:
            raise _pyssl.WantReadError()
        return _ffi.buffer(buf, n)[:]

    def recv(self, size: int) -> bytes:
        if self._ssl is None:
            self._not_started()
        buf = _read_buffer(size)
        n = _load().SSL_read(self._ssl, buf, size)
        if n <= 0:
            self._raise(n)
        return _ffi.buffer(buf, n)[:]

    read = recv

    def send(self, data: bytes) -> int:
        if not data:
            return 0
        if self._ssl is None:
            self._not_started()
        n = _load().SSL_write(self._ssl, data, len(data))
        if n <= 0:
            self._raise(n)
        return n

    write = send

    def shutdown(self) -> bool:
        if self._ssl is None:
            return True  # nothing was said: nothing to close
        r = _load().SSL_shutdown(self._ssl)
        if r < 0:
            self._raise(r)
        return r == 1

    def bio_shutdown(self) -> None:
        self._eof = True
        if self._ssl is None:
            return
        _load().BIO_ctrl(self._in, BIO_C_SET_BUF_MEM_EOF_RETURN, 0, _ffi.NULL)

    def pending(self) -> int:
        if self._ssl is None:
            return 0
        return _load().SSL_pending(self._ssl)

    def get_alpn_proto_negotiated(self) -> bytes:
        return b""

    def get_peer_certificate(self):
        """The peer's leaf (TLCP: its signing certificate), DER; None before a handshake."""
        lib = _load()
        if self._ssl is None:
            return None
        x = lib.SSL_get_peer_certificate(self._ssl)
        if x == _ffi.NULL:
            return None
        try:
            return _der(x)
        finally:
            lib.X509_free(x)

    # -- what the negotiation gave ---------------------------------------------------------

    def get_peer_cert_chain(self) -> list[bytes]:
        """Every certificate the peer sent, in its order (TLCP: signing, encryption, ...)."""
        lib = _load()
        chain = lib.SSL_get_peer_cert_chain(self._ssl)
        if chain == _ffi.NULL:
            return []
        return [_der(_ffi.cast("X509 *", lib.OPENSSL_sk_value(chain, i)))
                for i in range(lib.OPENSSL_sk_num(chain))]

    def is_tlcp(self) -> bool:
        return bool(_load().SSL_is_ntls(self._ssl))

    def get_protocol_version_name(self) -> str:
        return _text(_load().SSL_get_version(self._ssl))

    def get_cipher_name(self) -> str | None:
        lib = _load()
        cipher = lib.SSL_get_current_cipher(self._ssl)
        return _text(lib.SSL_CIPHER_get_name(cipher)) if cipher != _ffi.NULL else None
