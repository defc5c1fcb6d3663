//! Splunk HTTP Event Collector wire constants, as Splunk documents them: paths, header names
//! and the status codes with their texts. The simulator's own copies, never the client's.
//!
//! Sources:
//! - Format events for HTTP Event Collector (token header, basic authentication with the token as
//!   password, query-string token, channel header or query, batches of event objects one after
//!   another, the event metadata keys):
//!   <https://help.splunk.com/splunk-enterprise/get-data-in/collect-http-event-data/format-events-for-http-event-collector>
//! - About HTTP Event Collector Indexer Acknowledgment (ackId per request and channel,
//!   `POST /services/collector/ack` with `{"acks":[…]}` answered `{"acks":{"0":true,…}}`):
//!   <https://help.splunk.com/splunk-enterprise/get-data-in/collect-http-event-data/about-http-event-collector-indexer-acknowledgment>
//! - HTTP Event Collector REST API endpoints (`services/collector`, `/event`, `/event/1.0`,
//!   `/ack`, `/health`):
//!   <https://help.splunk.com/en/splunk-enterprise/get-data-in/collect-http-event-data/http-event-collector-rest-api-endpoints>
//! - Troubleshoot HTTP Event Collector, "Possible error codes" (the table below):
//!   <https://help.splunk.com/en/splunk-enterprise/get-data-in/collect-http-event-data/troubleshoot-http-event-collector>

/// `POST`: events in the JSON event protocol.
pub const PATH_EVENT: &str = "/services/collector/event";
/// The same endpoint under its two other documented names.
pub const PATH_EVENT_ALIASES: [&str; 2] = ["/services/collector", "/services/collector/event/1.0"];
/// `POST`: indexing status of ackIds.
pub const PATH_ACK: &str = "/services/collector/ack";
/// `GET`: whether HEC takes data.
pub const PATH_HEALTH: &str = "/services/collector/health";

/// `Authorization: Splunk <token>`.
pub const HEADER_AUTHORIZATION: &str = "authorization";
/// The scheme word before the token.
pub const AUTH_SCHEME: &str = "Splunk";
/// Basic authentication: any user name, the token as the password.
pub const AUTH_BASIC: &str = "Basic";
/// The channel (a GUID) when indexer acknowledgement is on; or the `channel` query parameter.
pub const HEADER_CHANNEL: &str = "x-splunk-request-channel";
pub const QUERY_CHANNEL: &str = "channel";
/// Query-string authorization (`?token=`), off by default on Splunk.
pub const QUERY_TOKEN: &str = "token";
pub const HEADER_CONTENT_ENCODING: &str = "content-encoding";
pub const HEADER_RETRY_AFTER: &str = "retry-after";

/// The body member carrying the first bad event's index (0-based) in a batch.
pub const INVALID_EVENT_NUMBER: &str = "invalid-event-number";

/// One row of Splunk's "Possible error codes" table: HEC status code, HTTP status, text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub code: u32,
    pub http: u16,
    pub text: &'static str,
}

const fn status(code: u32, http: u16, text: &'static str) -> Status {
    Status { code, http, text }
}

pub const SUCCESS: Status = status(0, 200, "Success");
pub const TOKEN_DISABLED: Status = status(1, 403, "Token disabled");
pub const TOKEN_REQUIRED: Status = status(2, 401, "Token is required");
pub const INVALID_AUTHORIZATION: Status = status(3, 401, "Invalid authorization");
pub const INVALID_TOKEN: Status = status(4, 403, "Invalid token");
pub const NO_DATA: Status = status(5, 400, "No data");
pub const INVALID_DATA_FORMAT: Status = status(6, 400, "Invalid data format");
pub const INCORRECT_INDEX: Status = status(7, 400, "Incorrect index");
pub const INTERNAL_ERROR: Status = status(8, 500, "Internal server error");
pub const SERVER_BUSY: Status = status(9, 503, "Server is busy");
pub const CHANNEL_MISSING: Status = status(10, 400, "Data channel is missing");
pub const INVALID_CHANNEL: Status = status(11, 400, "Invalid data channel");
pub const EVENT_REQUIRED: Status = status(12, 400, "Event field is required");
pub const EVENT_BLANK: Status = status(13, 400, "Event field cannot be blank");
pub const ACK_DISABLED: Status = status(14, 400, "ACK is disabled");
pub const QUERY_AUTH_DISABLED: Status =
    status(16, 400, "Query string authorization is not enabled");
pub const HEALTHY: Status = status(17, 200, "HEC is healthy");

/// 429 is not in Splunk's table: it is what a throttling load balancer or ingest gateway in
/// front of HEC answers (with `Retry-After`). The simulator answers it with this body, which
/// no Splunk document specifies (unverified).
pub const TOO_MANY_REQUESTS: Status = status(9, 429, "Too Many Requests");
