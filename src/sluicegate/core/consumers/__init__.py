"""Consumer instances: group members that deliver records in sequence and commit what is
confirmed — one core for the long-polling, WebSocket and Server-Sent Events consumers.

* ``registry``: ``ConsumerInstances`` creates, finds (by owner), deletes and reaps them;
* ``instance``: ``ConsumerInstance`` reads in turn from its partitions, numbers each
  delivery, confirms and commits, and follows rebalances;
* ``cursor``: one partition's read, in-flight and committed positions;
* ``counts``: deliveries per event (for dead-lettering after N deliveries);
* ``subscription``: what the caller says an instance reads (topics and a filter);
* ``batch``: what a read hands back.

Nothing here speaks HTTP, and nothing here knows CloudEvents.
"""
