"""The envoy protocol v8 schema as codecs, in the order of the schema (field order and union tag order are the wire
format; read off ``dist/index.js`` of npm ``@rivetkit/engine-envoy-protocol@2.3.19``).

:data:`TOP_LEVEL` holds the top-level types by schema name: ``ToRivet`` (envoy to engine), ``ToEnvoy`` (engine to
envoy), and the engine-internal ``ToEnvoyConn``, ``ToGateway``, ``ToOutbound`` and ``ActorCommandKeyData``.
"""

from __future__ import annotations

from rivetgreen.encoding.envoy import messages as m
from rivetgreen.encoding.envoy.codecs import (
    BOOL,
    DATA,
    F64,
    I64,
    STR,
    U16,
    U32,
    U64,
    Alias,
    Codec,
    EnumOf,
    FixedData,
    ListOf,
    MapOf,
    OptionalOf,
    Struct,
    Union,
)

ID = STR
JSON = STR
GATEWAY_ID = REQUEST_ID = FixedData(4)
MESSAGE_INDEX = U16
KV_KEY = KV_VALUE = DATA
SQLITE_GENERATION = U64


def void(message_class: type) -> Struct:
    return Struct(message_class)


# KV

KV_METADATA = Struct(m.KvMetadata, ("version", DATA), ("update_ts", I64))
KV_LIST_QUERY = Union(
    "KvListQuery",
    void(m.KvListAllQuery),
    Struct(m.KvListRangeQuery, ("start", KV_KEY), ("end", KV_KEY), ("exclusive", BOOL)),
    Struct(m.KvListPrefixQuery, ("key", KV_KEY)),
)
KV_REQUEST_DATA = Union(
    "KvRequestData",
    Struct(m.KvGetRequest, ("keys", ListOf(KV_KEY))),
    Struct(m.KvListRequest, ("query", KV_LIST_QUERY), ("reverse", OptionalOf(BOOL)), ("limit", OptionalOf(U64))),
    Struct(m.KvPutRequest, ("keys", ListOf(KV_KEY)), ("values", ListOf(KV_VALUE))),
    Struct(m.KvDeleteRequest, ("keys", ListOf(KV_KEY))),
    Struct(m.KvDeleteRangeRequest, ("start", KV_KEY), ("end", KV_KEY)),
    void(m.KvDropRequest),
)
KV_ENTRIES = (("keys", ListOf(KV_KEY)), ("values", ListOf(KV_VALUE)), ("metadata", ListOf(KV_METADATA)))
KV_RESPONSE_DATA = Union(
    "KvResponseData",
    Struct(m.KvErrorResponse, ("message", STR)),
    Struct(m.KvGetResponse, *KV_ENTRIES),
    Struct(m.KvListResponse, *KV_ENTRIES),
    void(m.KvPutResponse),
    void(m.KvDeleteResponse),
    void(m.KvDropResponse),
)

# SQLite pages

SQLITE_PGNO = U32
SQLITE_DIRTY_PAGE = Struct(m.SqliteDirtyPage, ("pgno", SQLITE_PGNO), ("bytes", DATA))
SQLITE_FETCHED_PAGE = Struct(m.SqliteFetchedPage, ("pgno", SQLITE_PGNO), ("bytes", OptionalOf(DATA)))
SQLITE_ERROR_RESPONSE = Struct(m.SqliteErrorResponse, ("group", STR), ("code", STR), ("message", STR))
EXPECTED_GENERATION = ("expected_generation", OptionalOf(U64))
EXPECTED_HEAD_TXID = ("expected_head_txid", OptionalOf(U64))
HEAD_TXID = ("head_txid", OptionalOf(U64))


def sqlite_response(name: str, ok: Struct) -> Union:
    return Union(name, ok, SQLITE_ERROR_RESPONSE)


SQLITE_GET_PAGES_REQUEST = Struct(
    m.SqliteGetPagesRequest, ("actor_id", ID), ("pgnos", ListOf(SQLITE_PGNO)), EXPECTED_GENERATION, EXPECTED_HEAD_TXID
)
SQLITE_GET_PAGES_RESPONSE = sqlite_response(
    "SqliteGetPagesResponse", Struct(m.SqliteGetPagesOk, ("pages", ListOf(SQLITE_FETCHED_PAGE)), HEAD_TXID)
)
SQLITE_COMMIT_REQUEST = Struct(
    m.SqliteCommitRequest,
    ("actor_id", ID),
    ("dirty_pages", ListOf(SQLITE_DIRTY_PAGE)),
    ("db_size_pages", U32),
    ("now_ms", I64),
    EXPECTED_GENERATION,
    EXPECTED_HEAD_TXID,
)
SQLITE_COMMIT_RESPONSE = sqlite_response("SqliteCommitResponse", Struct(m.SqliteCommitOk, HEAD_TXID))
SQLITE_COMMIT_STAGE_BEGIN_REQUEST = Struct(
    m.SqliteCommitStageBeginRequest, ("actor_id", ID), EXPECTED_GENERATION, EXPECTED_HEAD_TXID
)
SQLITE_COMMIT_STAGE_BEGIN_RESPONSE = sqlite_response(
    "SqliteCommitStageBeginResponse", Struct(m.SqliteCommitStageBeginOk, ("txid", U64))
)
SQLITE_COMMIT_STAGE_SEGMENT_REQUEST = Struct(
    m.SqliteCommitStageSegmentRequest,
    ("actor_id", ID),
    EXPECTED_GENERATION,
    ("txid", U64),
    ("first_pgno", U32),
    ("dirty_pages", ListOf(SQLITE_DIRTY_PAGE)),
)
SQLITE_COMMIT_STAGE_SEGMENT_RESPONSE = sqlite_response(
    "SqliteCommitStageSegmentResponse", Struct(m.SqliteCommitStageSegmentOk, ("staged_bytes", U64))
)
SQLITE_COMMIT_FINALIZE_REQUEST = Struct(
    m.SqliteCommitFinalizeRequest,
    ("actor_id", ID),
    EXPECTED_GENERATION,
    ("txid", U64),
    ("new_db_size_pages", U32),
    ("now_ms", I64),
    ("segment_first_pgnos", ListOf(U32)),  # a bare-ts u32 array: the same bytes as list<u32>
)
SQLITE_COMMIT_FINALIZE_RESPONSE = sqlite_response(
    "SqliteCommitFinalizeResponse", Struct(m.SqliteCommitFinalizeOk, HEAD_TXID)
)

# SQLite remote execution

SQLITE_VALUE = Union(  # SqliteBindParam and SqliteColumnValue: the same variants
    "SqliteValue",
    void(m.SqliteValueNull),
    Struct(m.SqliteValueInteger, ("value", I64)),
    Struct(m.SqliteValueFloat, ("value", F64)),  # data[8] holding a little-endian f64: the same 8 bytes as an f64
    Struct(m.SqliteValueText, ("value", STR)),
    Struct(m.SqliteValueBlob, ("value", DATA)),
)
SQLITE_ROWS = (("columns", ListOf(STR)), ("rows", ListOf(ListOf(SQLITE_VALUE))))
SQLITE_EXECUTE_RESULT = Struct(
    m.SqliteExecuteResult, *SQLITE_ROWS, ("changes", I64), ("last_insert_row_id", OptionalOf(I64))
)
SQLITE_TARGET = (("namespace_id", ID), ("actor_id", ID), ("generation", SQLITE_GENERATION))
SQLITE_PARAMS = ("params", OptionalOf(ListOf(SQLITE_VALUE)))
SQLITE_EXEC_REQUEST = Struct(m.SqliteExecRequest, *SQLITE_TARGET, ("sql", STR))
SQLITE_EXECUTE_REQUEST = Struct(m.SqliteExecuteRequest, *SQLITE_TARGET, ("sql", STR), SQLITE_PARAMS)
SQLITE_EXECUTE_BATCH_REQUEST = Struct(
    m.SqliteExecuteBatchRequest,
    *SQLITE_TARGET,
    ("statements", ListOf(Struct(m.SqliteBatchStatement, ("sql", STR), SQLITE_PARAMS))),
)
SQLITE_EXEC_RESPONSE = sqlite_response(
    "SqliteExecResponse", Struct(m.SqliteExecOk, ("result", Struct(m.SqliteQueryResult, *SQLITE_ROWS)))
)
SQLITE_EXECUTE_RESPONSE = sqlite_response(
    "SqliteExecuteResponse", Struct(m.SqliteExecuteOk, ("result", SQLITE_EXECUTE_RESULT))
)
SQLITE_EXECUTE_BATCH_RESPONSE = sqlite_response(
    "SqliteExecuteBatchResponse", Struct(m.SqliteExecuteBatchOk, ("results", ListOf(SQLITE_EXECUTE_RESULT)))
)

# Actors

ACTOR_CONFIG = Struct(
    m.ActorConfig, ("name", STR), ("key", OptionalOf(STR)), ("create_ts", I64), ("input", OptionalOf(DATA))
)
ACTOR_CHECKPOINT = Struct(m.ActorCheckpoint, ("actor_id", ID), ("generation", U32), ("index", I64))
ACTOR_INTENT = Union("ActorIntent", void(m.ActorIntentSleep), void(m.ActorIntentStop))
ACTOR_STATE = Union(
    "ActorState",
    void(m.ActorStateRunning),
    Struct(m.ActorStateStopped, ("code", EnumOf(m.StopCode)), ("message", OptionalOf(STR))),
)
EVENT = Union(
    "Event",
    Struct(m.EventActorIntent, ("intent", ACTOR_INTENT)),
    Struct(m.EventActorStateUpdate, ("state", ACTOR_STATE)),
    Struct(m.EventActorSetAlarm, ("alarm_ts", OptionalOf(I64))),
)
EVENT_WRAPPER = Struct(m.EventWrapper, ("checkpoint", ACTOR_CHECKPOINT), ("inner", EVENT))
PRELOADED_KV = Struct(
    m.PreloadedKv,
    ("entries", ListOf(Struct(m.PreloadedKvEntry, ("key", KV_KEY), ("value", KV_VALUE), ("metadata", KV_METADATA)))),
    ("requested_get_keys", ListOf(KV_KEY)),
    ("requested_prefixes", ListOf(KV_KEY)),
)
HIBERNATING_REQUEST = Struct(m.HibernatingRequest, ("gateway_id", GATEWAY_ID), ("request_id", REQUEST_ID))
COMMAND_START_ACTOR = Struct(
    m.CommandStartActor,
    ("config", ACTOR_CONFIG),
    ("hibernating_requests", ListOf(HIBERNATING_REQUEST)),
    ("preloaded_kv", OptionalOf(PRELOADED_KV)),
)
COMMAND_STOP_ACTOR = Struct(m.CommandStopActor, ("reason", EnumOf(m.StopActorReason)))
COMMAND = Union("Command", COMMAND_START_ACTOR, COMMAND_STOP_ACTOR)
COMMAND_WRAPPER = Struct(m.CommandWrapper, ("checkpoint", ACTOR_CHECKPOINT), ("inner", COMMAND))

# Tunnel

MESSAGE_ID = Struct(m.MessageId, ("gateway_id", GATEWAY_ID), ("request_id", REQUEST_ID), ("message_index", U16))
HEADERS = MapOf(STR, STR)
ACTOR_GENERATION = ("actor_generation", OptionalOf(U32))
CLOSE_CODE_AND_REASON = (("code", OptionalOf(U16)), ("reason", OptionalOf(STR)))
HTTP_STREAM_ABORT_REASON = Struct(
    m.HttpStreamAbortReason, ("kind", EnumOf(m.HttpStreamAbortReasonKind)), ("detail", OptionalOf(STR))
)
TO_RIVET_TUNNEL_MESSAGE = Struct(
    m.ToRivetTunnelMessage,
    ("message_id", MESSAGE_ID),
    (
        "message_kind",
        Union(
            "ToRivetTunnelMessageKind",
            Struct(
                m.ToRivetResponseStart,
                ("status", U16),
                ("headers", HEADERS),
                ("body", OptionalOf(DATA)),
                ("stream", BOOL),
            ),
            Struct(m.ToRivetResponseChunk, ("body", DATA), ("finish", BOOL)),
            Struct(m.ToRivetResponseAbort, ("reason", HTTP_STREAM_ABORT_REASON)),
            Struct(m.ToRivetRequestBodyWindowUpdate, ("consumed_bytes", U64)),
            void(m.ToRivetRequestBodyCancel),
            Struct(m.ToRivetWebSocketOpen, ("can_hibernate", BOOL)),
            Struct(m.ToRivetWebSocketMessage, ("data", DATA), ("binary", BOOL)),
            Struct(m.ToRivetWebSocketMessageAck, ("index", MESSAGE_INDEX)),
            Struct(m.ToRivetWebSocketClose, *CLOSE_CODE_AND_REASON, ("hibernate", BOOL)),
        ),
    ),
)
TO_ENVOY_TUNNEL_MESSAGE = Struct(
    m.ToEnvoyTunnelMessage,
    ("message_id", MESSAGE_ID),
    (
        "message_kind",
        Union(
            "ToEnvoyTunnelMessageKind",
            Struct(
                m.ToEnvoyRequestStart,
                ("actor_id", ID),
                ACTOR_GENERATION,
                ("method", STR),
                ("path", STR),
                ("headers", HEADERS),
                ("body", OptionalOf(DATA)),
                ("stream", BOOL),
                ("response_stream", BOOL),
            ),
            Struct(m.ToEnvoyRequestChunk, ("body", DATA), ("finish", BOOL)),
            Struct(
                m.ToEnvoyRequestAbort,
                ("actor_id", OptionalOf(ID)),
                ACTOR_GENERATION,
                ("reason", HTTP_STREAM_ABORT_REASON),
            ),
            void(m.ToEnvoyRequestBodyCancel),
            Struct(m.ToEnvoyResponseBodyWindowUpdate, ("consumed_bytes", U64)),
            Struct(m.ToEnvoyWebSocketOpen, ("actor_id", ID), ACTOR_GENERATION, ("path", STR), ("headers", HEADERS)),
            Struct(m.ToEnvoyWebSocketMessage, ("data", DATA), ("binary", BOOL)),
            Struct(m.ToEnvoyWebSocketClose, *CLOSE_CODE_AND_REASON),
        ),
    ),
)


# Top level


def request(message_class: type, data: Codec) -> Struct:
    """A request or response correlated by a u32 ``request_id`` chosen by the envoy."""
    return Struct(message_class, ("request_id", U32), ("data", data))


TO_ENVOY_COMMANDS = Alias(m.ToEnvoyCommands, "commands", ListOf(COMMAND_WRAPPER))
TO_ENVOY_ACK_EVENTS = Struct(m.ToEnvoyAckEvents, ("last_event_checkpoints", ListOf(ACTOR_CHECKPOINT)))

TO_RIVET = Union(
    "ToRivet",
    Struct(
        m.ToRivetMetadata,
        ("prepopulate_actor_names", OptionalOf(MapOf(STR, Struct(m.ActorName, ("metadata", JSON))))),
        ("metadata", OptionalOf(JSON)),
    ),
    Alias(m.ToRivetEvents, "events", ListOf(EVENT_WRAPPER)),
    Struct(m.ToRivetAckCommands, ("last_command_checkpoints", ListOf(ACTOR_CHECKPOINT))),
    void(m.ToRivetStopping),
    Struct(m.ToRivetPong, ("ts", I64)),
    Struct(m.ToRivetKvRequest, ("actor_id", ID), ("request_id", U32), ("data", KV_REQUEST_DATA)),
    TO_RIVET_TUNNEL_MESSAGE,
    request(m.ToRivetSqliteGetPagesRequest, SQLITE_GET_PAGES_REQUEST),
    request(m.ToRivetSqliteCommitRequest, SQLITE_COMMIT_REQUEST),
    request(m.ToRivetSqliteCommitStageBeginRequest, SQLITE_COMMIT_STAGE_BEGIN_REQUEST),
    request(m.ToRivetSqliteCommitStageSegmentRequest, SQLITE_COMMIT_STAGE_SEGMENT_REQUEST),
    request(m.ToRivetSqliteCommitFinalizeRequest, SQLITE_COMMIT_FINALIZE_REQUEST),
    request(m.ToRivetSqliteExecRequest, SQLITE_EXEC_REQUEST),
    request(m.ToRivetSqliteExecuteRequest, SQLITE_EXECUTE_REQUEST),
    request(m.ToRivetSqliteExecuteBatchRequest, SQLITE_EXECUTE_BATCH_REQUEST),
)

TO_ENVOY = Union(
    "ToEnvoy",
    Struct(
        m.ToEnvoyInit,
        (
            "metadata",
            Struct(
                m.ProtocolMetadata,
                ("envoy_lost_threshold", I64),
                ("actor_stop_threshold", I64),
                ("max_response_payload_size", U64),
            ),
        ),
    ),
    TO_ENVOY_COMMANDS,
    TO_ENVOY_ACK_EVENTS,
    request(m.ToEnvoyKvResponse, KV_RESPONSE_DATA),
    TO_ENVOY_TUNNEL_MESSAGE,
    Struct(m.ToEnvoyPing, ("ts", I64)),
    request(m.ToEnvoySqliteGetPagesResponse, SQLITE_GET_PAGES_RESPONSE),
    request(m.ToEnvoySqliteCommitResponse, SQLITE_COMMIT_RESPONSE),
    request(m.ToEnvoySqliteCommitStageBeginResponse, SQLITE_COMMIT_STAGE_BEGIN_RESPONSE),
    request(m.ToEnvoySqliteCommitStageSegmentResponse, SQLITE_COMMIT_STAGE_SEGMENT_RESPONSE),
    request(m.ToEnvoySqliteCommitFinalizeResponse, SQLITE_COMMIT_FINALIZE_RESPONSE),
    request(m.ToEnvoySqliteExecResponse, SQLITE_EXEC_RESPONSE),
    request(m.ToEnvoySqliteExecuteResponse, SQLITE_EXECUTE_RESPONSE),
    request(m.ToEnvoySqliteExecuteBatchResponse, SQLITE_EXECUTE_BATCH_RESPONSE),
)

TO_ENVOY_CONN = Union(
    "ToEnvoyConn",
    Struct(m.ToEnvoyConnPing, ("gateway_id", GATEWAY_ID), ("request_id", REQUEST_ID), ("ts", I64)),
    void(m.ToEnvoyConnClose),
    TO_ENVOY_COMMANDS,
    TO_ENVOY_ACK_EVENTS,
    TO_ENVOY_TUNNEL_MESSAGE,
)
TO_GATEWAY = Union(
    "ToGateway", Struct(m.ToGatewayPong, ("request_id", REQUEST_ID), ("ts", I64)), TO_RIVET_TUNNEL_MESSAGE
)
TO_OUTBOUND = Union(
    "ToOutbound",
    Struct(
        m.ToOutboundActorStart,
        ("namespace_id", ID),
        ("pool_name", STR),
        ("checkpoint", ACTOR_CHECKPOINT),
        ("actor_config", ACTOR_CONFIG),
    ),
)
ACTOR_COMMAND_KEY_DATA = Union("ActorCommandKeyData", COMMAND_START_ACTOR, COMMAND_STOP_ACTOR)

TOP_LEVEL: dict[str, Union] = {
    "ToRivet": TO_RIVET,
    "ToEnvoy": TO_ENVOY,
    "ToEnvoyConn": TO_ENVOY_CONN,
    "ToGateway": TO_GATEWAY,
    "ToOutbound": TO_OUTBOUND,
    "ActorCommandKeyData": ACTOR_COMMAND_KEY_DATA,
}
