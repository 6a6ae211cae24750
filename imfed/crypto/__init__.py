"""GM cryptography for imfed: SM2, SM3, SM4, the SM2 PKI, TLS contexts and request signing."""
