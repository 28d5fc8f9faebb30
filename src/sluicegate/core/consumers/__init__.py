"""Consumer instances: group members that deliver records in sequence and commit what is
confirmed — one core for the long-polling, WebSocket and Server-Sent Events consumers.

* ``registry``: ``ConsumerInstances`` creates, finds (by owner), deletes and reaps them;
* ``instance``: ``ConsumerInstance`` reads in turn from its partitions, numbers each
  delivery, confirms and commits, and follows rebalances;
* ``group``: a group's instances on this node, and its commits (one at a time, forward);
* ``cursor``: one partition's read position and in-flight deliveries;
* ``counts``: deliveries per event (for dead-lettering after N deliveries), and
  ``count_store``: those counts kept in the log across restarts;
* ``dead``: where an event goes after ``max_deliveries`` (the caller says);
* ``lag``: each group's lag and health, for /metrics and the admin API;
* ``subscription``: what the caller says an instance reads (topics and a filter);
* ``batch``: what a read hands back.

Nothing here speaks HTTP, and nothing here knows CloudEvents.
"""
