//! Errors of the OVSDB client core.

use serde_json::Value;

/// Everything that can go wrong in this crate.
///
/// Framing errors ([`Error::MessageTooLarge`], [`Error::BadJson`], [`Error::BadFraming`]) are
/// fatal for the connection: [`crate::Client::receive`] returns them and the caller must drop
/// the connection (then call [`crate::Client::on_disconnected`]).  All other variants describe
/// one message or one operation and are reported through [`crate::Event::Error`] or
/// [`crate::Event::TransactDone`] while the session continues.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A single JSON-RPC message grew beyond the framer's limit.
    #[error("JSON-RPC message exceeds the {limit}-byte limit")]
    MessageTooLarge { limit: usize },
    /// A complete JSON text was found but it does not parse.
    #[error("invalid JSON in message at stream offset {offset}: {msg}")]
    BadJson { offset: u64, msg: String },
    /// Something other than a JSON object appeared between messages.
    #[error("unexpected byte {byte:#04x} at stream offset {offset} (expected '{{')")]
    BadFraming { offset: u64, byte: u8 },
    /// A JSON value that is not a valid JSON-RPC 1.0 message.
    #[error("malformed JSON-RPC message: {0}")]
    BadMessage(String),
    /// The database schema returned by `get_schema` could not be understood.
    #[error("bad schema: {0}")]
    BadSchema(String),
    /// Ill-typed or malformed data in an update (the row or column is skipped).
    #[error("bad data in {context}: {msg}")]
    BadData { context: String, msg: String },
    /// The server answered a request with a JSON-RPC error.
    #[error("server returned error for {method}: {error}")]
    Rpc { method: String, error: Value },
    /// A transaction was executed but one of its operations (or the commit) failed.
    #[error("transaction operation {index} failed: {error}{}", details.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TransactFailed {
        index: usize,
        error: String,
        details: Option<String>,
        /// The complete result array, for callers that want more than the first error.
        results: Vec<Value>,
    },
    /// The request was made while no connection was up.
    #[error("not connected to the database server")]
    NotConnected,
    /// The connection was lost before the reply arrived; the outcome is unknown.
    #[error("connection lost before the reply arrived")]
    Disconnected,
}
