-- What a provider takes and how long a message may wait for it (issue 10):
-- message_ttl_s      maximum age of a message for this provider; 0 = the
--                    gateway's SMSGW_MESSAGE_TTL_S (the validity, when
--                    shorter, wins either way);
-- max_pdu_octets     largest submit_sm PDU the provider accepts; bigger
--                    messages fail at routing (err:907) instead of being sent;
-- max_unknown_attempts  sends without an answer (connection lost, response
--                    timeout) before a message fails alone (err:906).
ALTER TABLE providers
    ADD COLUMN message_ttl_s INTEGER NOT NULL DEFAULT 0 CHECK (message_ttl_s >= 0),
    ADD COLUMN max_pdu_octets INTEGER NOT NULL DEFAULT 65536 CHECK (max_pdu_octets >= 64),
    ADD COLUMN max_unknown_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_unknown_attempts >= 1);
