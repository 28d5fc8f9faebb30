"""CloudEvents in the core: the event and its bindings, the topics events live in (by
type, and each client's test and dead streams), and which topic an event type lives in."""
