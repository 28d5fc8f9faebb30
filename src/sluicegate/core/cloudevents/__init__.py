"""CloudEvents in the core: which topic an event type lives in."""
