-- Whether submit_sm to this provider asks for a delivery receipt (registered_delivery):
-- 'always' (1, whatever the customer asked: the gateway's message states, query_sm and
-- failure receipts need the provider's receipt) or 'as-customer' (the customer's own
-- registered_delivery, passed on: fewer receipts to pay for and carry, but a message
-- whose customer asked for none stays 'enroute' in the gateway's state).
ALTER TABLE providers
    ADD COLUMN request_receipts TEXT NOT NULL DEFAULT 'always'
        CHECK (request_receipts IN ('always', 'as-customer'));
