"""Bringing up what the gateway runs on: embedded Kafka (KRaft), PostgreSQL, Ray."""
