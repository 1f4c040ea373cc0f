-- How a provider wants concatenated messages framed (smsgw/reframe.py):
-- 'keep' passes the customer's framing on (under the bind's own reference);
-- 'udh8', 'udh16' and 'sar' re-segment text into that framing and split a
-- long message_payload into parts.
ALTER TABLE providers
    ADD COLUMN segmentation TEXT NOT NULL DEFAULT 'keep'
        CHECK (segmentation IN ('keep', 'udh8', 'udh16', 'sar'));
