"""The message path after acceptance: router, provider connectors, correlator, deliverer.

Each worker is a plain asyncio class that consumes one Kafka topic and
produces to the next; ``smsgw.actors`` runs them as Ray actors, tests and
``smsgw run`` can run them in-process. None of them holds work that exists
nowhere else: unfinished records stay uncommitted in Kafka.
"""
