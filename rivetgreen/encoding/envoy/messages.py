"""The messages of envoy protocol v8 (npm ``@rivetkit/engine-envoy-protocol@2.3.19``, engine-envoy.md §3.3, §10.2).

Class names are the schema's type names and field names its field names in snake_case, so a message reads the same
here as in the schema. Union types are Python unions of their variant classes; a ``void`` variant is a class without
fields. ``data`` is ``bytes``, every integer type ``int``, ``list<T>`` a ``list``, ``map<K><V>`` a ``dict`` (sent in
its iteration order). ``GatewayId`` and ``RequestId`` are exactly 4 bytes. Fields are keyword-only, in wire order;
optional fields default to None.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# KV ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class KvMetadata:
    version: bytes
    update_ts: int


@dataclass(frozen=True, kw_only=True)
class KvListAllQuery:
    """List every key."""


@dataclass(frozen=True, kw_only=True)
class KvListRangeQuery:
    start: bytes
    end: bytes
    exclusive: bool


@dataclass(frozen=True, kw_only=True)
class KvListPrefixQuery:
    key: bytes


KvListQuery = KvListAllQuery | KvListRangeQuery | KvListPrefixQuery


@dataclass(frozen=True, kw_only=True)
class KvGetRequest:
    keys: list[bytes]


@dataclass(frozen=True, kw_only=True)
class KvListRequest:
    query: KvListQuery
    reverse: bool | None = None
    limit: int | None = None


@dataclass(frozen=True, kw_only=True)
class KvPutRequest:
    keys: list[bytes]
    values: list[bytes]


@dataclass(frozen=True, kw_only=True)
class KvDeleteRequest:
    keys: list[bytes]


@dataclass(frozen=True, kw_only=True)
class KvDeleteRangeRequest:
    start: bytes
    end: bytes


@dataclass(frozen=True, kw_only=True)
class KvDropRequest:
    """Delete every key of the actor."""


@dataclass(frozen=True, kw_only=True)
class KvErrorResponse:
    message: str


@dataclass(frozen=True, kw_only=True)
class KvGetResponse:
    """The keys found (missing keys are left out), their values and metadata, index for index."""

    keys: list[bytes]
    values: list[bytes]
    metadata: list[KvMetadata]


@dataclass(frozen=True, kw_only=True)
class KvListResponse:
    keys: list[bytes]
    values: list[bytes]
    metadata: list[KvMetadata]


@dataclass(frozen=True, kw_only=True)
class KvPutResponse:
    """The put succeeded."""


@dataclass(frozen=True, kw_only=True)
class KvDeleteResponse:
    """The delete (or delete range) succeeded."""


@dataclass(frozen=True, kw_only=True)
class KvDropResponse:
    """The drop succeeded."""


KvRequestData = KvGetRequest | KvListRequest | KvPutRequest | KvDeleteRequest | KvDeleteRangeRequest | KvDropRequest
KvResponseData = KvErrorResponse | KvGetResponse | KvListResponse | KvPutResponse | KvDeleteResponse | KvDropResponse

# SQLite pages (the transport behind a local SQLite VFS) ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SqliteDirtyPage:
    pgno: int
    bytes: bytes


@dataclass(frozen=True, kw_only=True)
class SqliteFetchedPage:
    pgno: int
    bytes: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class SqliteGetPagesRequest:
    actor_id: str
    pgnos: list[int]
    expected_generation: int | None = None
    expected_head_txid: int | None = None


@dataclass(frozen=True, kw_only=True)
class SqliteGetPagesOk:
    pages: list[SqliteFetchedPage]
    head_txid: int | None = None


@dataclass(frozen=True, kw_only=True)
class SqliteErrorResponse:
    """Any SQLite request failed; the engine reports SQL errors as ``core/internal_error`` (engine-envoy.md §10.2)."""

    group: str
    code: str
    message: str


SqliteGetPagesResponse = SqliteGetPagesOk | SqliteErrorResponse


@dataclass(frozen=True, kw_only=True)
class SqliteCommitRequest:
    actor_id: str
    dirty_pages: list[SqliteDirtyPage]
    db_size_pages: int
    now_ms: int
    expected_generation: int | None = None
    expected_head_txid: int | None = None


@dataclass(frozen=True, kw_only=True)
class SqliteCommitOk:
    head_txid: int | None = None


SqliteCommitResponse = SqliteCommitOk | SqliteErrorResponse


@dataclass(frozen=True, kw_only=True)
class SqliteCommitStageBeginRequest:
    """Start a commit too large for one request: segments follow, then a finalize makes them visible."""

    actor_id: str
    expected_generation: int | None = None
    expected_head_txid: int | None = None


@dataclass(frozen=True, kw_only=True)
class SqliteCommitStageBeginOk:
    txid: int


SqliteCommitStageBeginResponse = SqliteCommitStageBeginOk | SqliteErrorResponse


@dataclass(frozen=True, kw_only=True)
class SqliteCommitStageSegmentRequest:
    actor_id: str
    expected_generation: int | None = None
    txid: int
    first_pgno: int
    dirty_pages: list[SqliteDirtyPage]


@dataclass(frozen=True, kw_only=True)
class SqliteCommitStageSegmentOk:
    staged_bytes: int


SqliteCommitStageSegmentResponse = SqliteCommitStageSegmentOk | SqliteErrorResponse


@dataclass(frozen=True, kw_only=True)
class SqliteCommitFinalizeRequest:
    actor_id: str
    expected_generation: int | None = None
    txid: int
    new_db_size_pages: int
    now_ms: int
    segment_first_pgnos: list[int]


@dataclass(frozen=True, kw_only=True)
class SqliteCommitFinalizeOk:
    head_txid: int | None = None


SqliteCommitFinalizeResponse = SqliteCommitFinalizeOk | SqliteErrorResponse

# SQLite remote execution -----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SqliteValueNull:
    """SQL NULL."""


@dataclass(frozen=True, kw_only=True)
class SqliteValueInteger:
    value: int


@dataclass(frozen=True, kw_only=True)
class SqliteValueFloat:
    """A REAL; on the wire a fixed ``data[8]`` holding the little-endian binary64 (engine-envoy.md §10.2)."""

    value: float


@dataclass(frozen=True, kw_only=True)
class SqliteValueText:
    value: str


@dataclass(frozen=True, kw_only=True)
class SqliteValueBlob:
    value: bytes


SqliteBindParam = SqliteValueNull | SqliteValueInteger | SqliteValueFloat | SqliteValueText | SqliteValueBlob
SqliteColumnValue = SqliteBindParam


@dataclass(frozen=True, kw_only=True)
class SqliteQueryResult:
    columns: list[str]
    rows: list[list[SqliteColumnValue]]


@dataclass(frozen=True, kw_only=True)
class SqliteExecuteResult:
    columns: list[str]
    rows: list[list[SqliteColumnValue]]
    changes: int
    last_insert_row_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class SqliteExecRequest:
    """Run a (multi-statement) script. ``namespace_id`` holds the namespace *name* (engine-envoy.md §3.6)."""

    namespace_id: str
    actor_id: str
    generation: int
    sql: str


@dataclass(frozen=True, kw_only=True)
class SqliteExecuteRequest:
    namespace_id: str
    actor_id: str
    generation: int
    sql: str
    params: list[SqliteBindParam] | None = None


@dataclass(frozen=True, kw_only=True)
class SqliteBatchStatement:
    sql: str
    params: list[SqliteBindParam] | None = None


@dataclass(frozen=True, kw_only=True)
class SqliteExecuteBatchRequest:
    """Statements the engine runs atomically, in one transaction."""

    namespace_id: str
    actor_id: str
    generation: int
    statements: list[SqliteBatchStatement]


@dataclass(frozen=True, kw_only=True)
class SqliteExecOk:
    result: SqliteQueryResult


@dataclass(frozen=True, kw_only=True)
class SqliteExecuteOk:
    result: SqliteExecuteResult


@dataclass(frozen=True, kw_only=True)
class SqliteExecuteBatchOk:
    results: list[SqliteExecuteResult]


SqliteExecResponse = SqliteExecOk | SqliteErrorResponse
SqliteExecuteResponse = SqliteExecuteOk | SqliteErrorResponse
SqliteExecuteBatchResponse = SqliteExecuteBatchOk | SqliteErrorResponse

# Actors ----------------------------------------------------------------------------------------------------------


class StopCode(Enum):
    OK = "Ok"
    ERROR = "Error"


@dataclass(frozen=True, kw_only=True)
class ActorName:
    metadata: str  # JSON text


@dataclass(frozen=True, kw_only=True)
class ActorConfig:
    """``create_ts`` is the start time of this generation, not the actor's creation (engine-envoy.md §10.2)."""

    name: str
    key: str | None = None
    create_ts: int
    input: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class ActorCheckpoint:
    """Numbers commands and events per (actor, generation) (engine-envoy.md §3.5)."""

    actor_id: str
    generation: int
    index: int


@dataclass(frozen=True, kw_only=True)
class ActorIntentSleep:
    """The actor asks to sleep."""


@dataclass(frozen=True, kw_only=True)
class ActorIntentStop:
    """The actor asks to be destroyed."""


ActorIntent = ActorIntentSleep | ActorIntentStop


@dataclass(frozen=True, kw_only=True)
class ActorStateRunning:
    """The actor started and is reachable."""


@dataclass(frozen=True, kw_only=True)
class ActorStateStopped:
    code: StopCode
    message: str | None = None


ActorState = ActorStateRunning | ActorStateStopped


@dataclass(frozen=True, kw_only=True)
class EventActorIntent:
    intent: ActorIntent


@dataclass(frozen=True, kw_only=True)
class EventActorStateUpdate:
    state: ActorState


@dataclass(frozen=True, kw_only=True)
class EventActorSetAlarm:
    """Wake the sleeping actor at ``alarm_ts`` (ms); None clears the alarm."""

    alarm_ts: int | None = None


Event = EventActorIntent | EventActorStateUpdate | EventActorSetAlarm


@dataclass(frozen=True, kw_only=True)
class EventWrapper:
    checkpoint: ActorCheckpoint
    inner: Event


@dataclass(frozen=True, kw_only=True)
class PreloadedKvEntry:
    key: bytes
    value: bytes
    metadata: KvMetadata


@dataclass(frozen=True, kw_only=True)
class PreloadedKv:
    entries: list[PreloadedKvEntry]
    requested_get_keys: list[bytes]
    requested_prefixes: list[bytes]


@dataclass(frozen=True, kw_only=True)
class HibernatingRequest:
    gateway_id: bytes
    request_id: bytes


@dataclass(frozen=True, kw_only=True)
class CommandStartActor:
    config: ActorConfig
    hibernating_requests: list[HibernatingRequest]
    preloaded_kv: PreloadedKv | None = None


class StopActorReason(Enum):
    SLEEP_INTENT = "SleepIntent"
    STOP_INTENT = "StopIntent"
    DESTROY = "Destroy"
    GOING_AWAY = "GoingAway"
    LOST = "Lost"


@dataclass(frozen=True, kw_only=True)
class CommandStopActor:
    reason: StopActorReason


Command = CommandStartActor | CommandStopActor
ActorCommandKeyData = Command  # the same union as a top-level type (the engine stores pending commands with it)


@dataclass(frozen=True, kw_only=True)
class CommandWrapper:
    checkpoint: ActorCheckpoint
    inner: Command


# Tunnel ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MessageId:
    """Each side numbers its own messages per (gateway_id, request_id) from 0 (engine-envoy.md §3.5)."""

    gateway_id: bytes
    request_id: bytes
    message_index: int


@dataclass(frozen=True, kw_only=True)
class ToEnvoyRequestStart:
    """An HTTP request; the engine 2.3.19 leaves ``actor_generation`` None (engine-envoy.md §10.2)."""

    actor_id: str
    actor_generation: int | None = None
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None
    stream: bool
    response_stream: bool


@dataclass(frozen=True, kw_only=True)
class ToEnvoyRequestChunk:
    body: bytes
    finish: bool


@dataclass(frozen=True, kw_only=True)
class ToRivetRequestBodyWindowUpdate:
    """Cumulative request-body bytes the handler consumed (flow control)."""

    consumed_bytes: int


@dataclass(frozen=True, kw_only=True)
class ToRivetRequestBodyCancel:
    """The handler wants no more request-body bytes; the response may continue."""


class HttpStreamAbortReasonKind(Enum):
    UNKNOWN = "Unknown"
    CANCELLED = "Cancelled"
    HANDLER_ERROR = "HandlerError"
    INTERNAL_ERROR = "InternalError"


@dataclass(frozen=True, kw_only=True)
class HttpStreamAbortReason:
    kind: HttpStreamAbortReasonKind
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class ToEnvoyRequestAbort:
    actor_id: str | None = None
    actor_generation: int | None = None
    reason: HttpStreamAbortReason


@dataclass(frozen=True, kw_only=True)
class ToEnvoyRequestBodyCancel:
    """Stop the request body without cancelling the response."""


@dataclass(frozen=True, kw_only=True)
class ToRivetResponseStart:
    status: int
    headers: dict[str, str]
    body: bytes | None = None
    stream: bool


@dataclass(frozen=True, kw_only=True)
class ToRivetResponseChunk:
    body: bytes
    finish: bool


@dataclass(frozen=True, kw_only=True)
class ToEnvoyResponseBodyWindowUpdate:
    """Cumulative response-body bytes the gateway's client consumed (flow control)."""

    consumed_bytes: int


@dataclass(frozen=True, kw_only=True)
class ToRivetResponseAbort:
    reason: HttpStreamAbortReason


@dataclass(frozen=True, kw_only=True)
class ToEnvoyWebSocketOpen:
    actor_id: str
    actor_generation: int | None = None
    path: str
    headers: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class ToEnvoyWebSocketMessage:
    data: bytes
    binary: bool


@dataclass(frozen=True, kw_only=True)
class ToEnvoyWebSocketClose:
    code: int | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ToRivetWebSocketOpen:
    can_hibernate: bool


@dataclass(frozen=True, kw_only=True)
class ToRivetWebSocketMessage:
    data: bytes
    binary: bool


@dataclass(frozen=True, kw_only=True)
class ToRivetWebSocketMessageAck:
    """Acknowledges the inbound message ``index`` of a hibernatable WebSocket."""

    index: int


@dataclass(frozen=True, kw_only=True)
class ToRivetWebSocketClose:
    code: int | None = None
    reason: str | None = None
    hibernate: bool


ToRivetTunnelMessageKind = (
    ToRivetResponseStart | ToRivetResponseChunk | ToRivetResponseAbort | ToRivetRequestBodyWindowUpdate
    | ToRivetRequestBodyCancel | ToRivetWebSocketOpen | ToRivetWebSocketMessage | ToRivetWebSocketMessageAck
    | ToRivetWebSocketClose
)
ToEnvoyTunnelMessageKind = (
    ToEnvoyRequestStart | ToEnvoyRequestChunk | ToEnvoyRequestAbort | ToEnvoyRequestBodyCancel
    | ToEnvoyResponseBodyWindowUpdate | ToEnvoyWebSocketOpen | ToEnvoyWebSocketMessage | ToEnvoyWebSocketClose
)


@dataclass(frozen=True, kw_only=True)
class ToRivetTunnelMessage:
    message_id: MessageId
    message_kind: ToRivetTunnelMessageKind


@dataclass(frozen=True, kw_only=True)
class ToEnvoyTunnelMessage:
    message_id: MessageId
    message_kind: ToEnvoyTunnelMessageKind


# Envoy -> engine (ToRivet) ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ToRivetMetadata:
    """Sent once after ``ToEnvoyInit``; ``metadata`` is JSON text."""

    prepopulate_actor_names: dict[str, ActorName] | None = None
    metadata: str | None = None


@dataclass(frozen=True, kw_only=True)
class ToRivetEvents:
    """On the wire just ``list<EventWrapper>``."""

    events: list[EventWrapper]


@dataclass(frozen=True, kw_only=True)
class ToRivetAckCommands:
    last_command_checkpoints: list[ActorCheckpoint]


@dataclass(frozen=True, kw_only=True)
class ToRivetStopping:
    """This envoy drains: the engine stops its actors with ``GoingAway``."""


@dataclass(frozen=True, kw_only=True)
class ToRivetPong:
    ts: int


@dataclass(frozen=True, kw_only=True)
class ToRivetKvRequest:
    """``request_id`` is chosen by the envoy; KV is not fenced by generation (engine-envoy.md §3.5)."""

    actor_id: str
    request_id: int
    data: KvRequestData


@dataclass(frozen=True, kw_only=True)
class ToRivetSqliteGetPagesRequest:
    request_id: int
    data: SqliteGetPagesRequest


@dataclass(frozen=True, kw_only=True)
class ToRivetSqliteCommitRequest:
    request_id: int
    data: SqliteCommitRequest


@dataclass(frozen=True, kw_only=True)
class ToRivetSqliteCommitStageBeginRequest:
    request_id: int
    data: SqliteCommitStageBeginRequest


@dataclass(frozen=True, kw_only=True)
class ToRivetSqliteCommitStageSegmentRequest:
    request_id: int
    data: SqliteCommitStageSegmentRequest


@dataclass(frozen=True, kw_only=True)
class ToRivetSqliteCommitFinalizeRequest:
    request_id: int
    data: SqliteCommitFinalizeRequest


@dataclass(frozen=True, kw_only=True)
class ToRivetSqliteExecRequest:
    request_id: int
    data: SqliteExecRequest


@dataclass(frozen=True, kw_only=True)
class ToRivetSqliteExecuteRequest:
    request_id: int
    data: SqliteExecuteRequest


@dataclass(frozen=True, kw_only=True)
class ToRivetSqliteExecuteBatchRequest:
    request_id: int
    data: SqliteExecuteBatchRequest


ToRivet = (
    ToRivetMetadata | ToRivetEvents | ToRivetAckCommands | ToRivetStopping | ToRivetPong | ToRivetKvRequest
    | ToRivetTunnelMessage | ToRivetSqliteGetPagesRequest | ToRivetSqliteCommitRequest
    | ToRivetSqliteCommitStageBeginRequest | ToRivetSqliteCommitStageSegmentRequest
    | ToRivetSqliteCommitFinalizeRequest | ToRivetSqliteExecRequest | ToRivetSqliteExecuteRequest
    | ToRivetSqliteExecuteBatchRequest
)

# Engine -> envoy (ToEnvoy) ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProtocolMetadata:
    """Thresholds in ms and the largest response payload in bytes."""

    envoy_lost_threshold: int
    actor_stop_threshold: int
    max_response_payload_size: int


@dataclass(frozen=True, kw_only=True)
class ToEnvoyInit:
    """The engine's first message on a new connection."""

    metadata: ProtocolMetadata


@dataclass(frozen=True, kw_only=True)
class ToEnvoyCommands:
    """On the wire just ``list<CommandWrapper>``."""

    commands: list[CommandWrapper]


@dataclass(frozen=True, kw_only=True)
class ToEnvoyAckEvents:
    last_event_checkpoints: list[ActorCheckpoint]


@dataclass(frozen=True, kw_only=True)
class ToEnvoyKvResponse:
    request_id: int
    data: KvResponseData


@dataclass(frozen=True, kw_only=True)
class ToEnvoyPing:
    """Answer with a ``ToRivetPong`` carrying the same ``ts``."""

    ts: int


@dataclass(frozen=True, kw_only=True)
class ToEnvoySqliteGetPagesResponse:
    request_id: int
    data: SqliteGetPagesResponse


@dataclass(frozen=True, kw_only=True)
class ToEnvoySqliteCommitResponse:
    request_id: int
    data: SqliteCommitResponse


@dataclass(frozen=True, kw_only=True)
class ToEnvoySqliteCommitStageBeginResponse:
    request_id: int
    data: SqliteCommitStageBeginResponse


@dataclass(frozen=True, kw_only=True)
class ToEnvoySqliteCommitStageSegmentResponse:
    request_id: int
    data: SqliteCommitStageSegmentResponse


@dataclass(frozen=True, kw_only=True)
class ToEnvoySqliteCommitFinalizeResponse:
    request_id: int
    data: SqliteCommitFinalizeResponse


@dataclass(frozen=True, kw_only=True)
class ToEnvoySqliteExecResponse:
    request_id: int
    data: SqliteExecResponse


@dataclass(frozen=True, kw_only=True)
class ToEnvoySqliteExecuteResponse:
    request_id: int
    data: SqliteExecuteResponse


@dataclass(frozen=True, kw_only=True)
class ToEnvoySqliteExecuteBatchResponse:
    request_id: int
    data: SqliteExecuteBatchResponse


ToEnvoy = (
    ToEnvoyInit | ToEnvoyCommands | ToEnvoyAckEvents | ToEnvoyKvResponse | ToEnvoyTunnelMessage | ToEnvoyPing
    | ToEnvoySqliteGetPagesResponse | ToEnvoySqliteCommitResponse | ToEnvoySqliteCommitStageBeginResponse
    | ToEnvoySqliteCommitStageSegmentResponse | ToEnvoySqliteCommitFinalizeResponse | ToEnvoySqliteExecResponse
    | ToEnvoySqliteExecuteResponse | ToEnvoySqliteExecuteBatchResponse
)

# Engine-internal top-level types (pegboard to gateway and outbound), part of the same schema ---------------------


@dataclass(frozen=True, kw_only=True)
class ToEnvoyConnPing:
    gateway_id: bytes
    request_id: bytes
    ts: int


@dataclass(frozen=True, kw_only=True)
class ToEnvoyConnClose:
    """Close the envoy connection."""


ToEnvoyConn = ToEnvoyConnPing | ToEnvoyConnClose | ToEnvoyCommands | ToEnvoyAckEvents | ToEnvoyTunnelMessage


@dataclass(frozen=True, kw_only=True)
class ToGatewayPong:
    request_id: bytes
    ts: int


ToGateway = ToGatewayPong | ToRivetTunnelMessage


@dataclass(frozen=True, kw_only=True)
class ToOutboundActorStart:
    namespace_id: str
    pool_name: str
    checkpoint: ActorCheckpoint
    actor_config: ActorConfig


ToOutbound = ToOutboundActorStart
