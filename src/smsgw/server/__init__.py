"""The customer-facing SMPP server (the IO shell around the sans-IO session)."""
