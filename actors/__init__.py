"""Ray actors: thin shells that run the gateway's plain asyncio workers in a cluster.

Each actor starts its worker on a thread of its own in ``__init__``, so a
restart by Ray (``max_restarts=-1``) resumes work by itself: from committed
Kafka offsets and compacted topics, never from anything kept in the actor.
"""
