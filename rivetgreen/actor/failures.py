"""Logging what user code raised: once, on the server, whatever the client is told.

* An exception that is not a public ``RivetError`` (a bug such as a ``TypeError``, or an error whose message
  clients only see masked) is logged at ERROR with its traceback.
* A public ``RivetError`` (``UserError`` and the other codes clients see in full) is an expected outcome: one INFO
  line, no traceback.
* The abort (:class:`~rivetgreen.errors.ActorAborted`) is how shutdown ends work, not a failure: DEBUG.

Every line names the actor: its name, key and id.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rivetgreen.errors import ActorAborted, RivetError

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask

log = logging.getLogger("rivetgreen.actor")

def report_failure(task: ActorTask, what: str, error: BaseException) -> None:
    """Log that ``what`` (e.g. "action 'add'") of ``task``'s actor raised ``error``. Called once per failure, where
    the failure stops travelling: the dispatch greenlet that answers the client, or the runner of a hook, the run
    handler, a scheduled action or background work."""
    actor = f"actor {task.name} {task.key!r} ({task.actor_id})"
    if isinstance(error, ActorAborted):
        log.debug("%s: %s aborted for shutdown", actor, what)
    elif isinstance(error, RivetError) and error.public:
        log.info("%s: %s raised %s", actor, what, error)
    else:
        log.error("%s: %s failed", actor, what, exc_info=error)
