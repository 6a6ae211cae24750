-- TLCP's encryption certificates (docs/protocol.md §3): a server's, and what an application
-- asked for (encCsr) and was issued (encCert).  Optional: a server that will not speak TLCP has
-- none.
ALTER TABLE servers ADD COLUMN enc_cert_pem TEXT;
ALTER TABLE applications ADD COLUMN enc_csr_pem TEXT;
ALTER TABLE applications ADD COLUMN enc_cert_pem TEXT
