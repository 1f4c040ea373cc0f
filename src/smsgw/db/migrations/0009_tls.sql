-- TLS (issue 11).
-- Customers: whether a bind must come over TLS with a verified client certificate
-- (checked against SMSGW_SMPP_TLS_CLIENT_CA and every customer's own CA at the
-- handshake), and optionally which one: issued by the customer's own CA (PEM kept
-- here), its SHA-256 fingerprint and/or its subject's common name.
ALTER TABLE customers
    ADD COLUMN require_client_cert BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN client_ca_pem TEXT,
    ADD COLUMN client_cert_sha256 TEXT
        CHECK (client_cert_sha256 ~ '^([0-9A-F]{2}:){31}[0-9A-F]{2}$'),
    ADD COLUMN client_cert_cn TEXT;

-- Providers: SMPP over TLS towards the SMSC. The chain is verified against the
-- system CAs or tls_ca_file, and the host name against the certificate unless
-- the operator opted out (tls_verify_hostname = FALSE).
ALTER TABLE providers
    ADD COLUMN tls BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN tls_ca_file TEXT,
    ADD COLUMN tls_verify_hostname BOOLEAN NOT NULL DEFAULT TRUE;

-- Provider passwords at rest (issue 11): stored sealed ('fernet:<token>', the key in
-- $SMSGW_HOME/secrets.key) or as a reference to a secret file ('file:<path>'), which
-- need more room than SMPP's 8 characters. Rows still in plaintext are sealed by the
-- gateway at start (smsgw.sealing.seal_plaintext: the key is not in the database).
ALTER TABLE providers ALTER COLUMN password TYPE TEXT;
