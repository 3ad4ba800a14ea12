//! SIP over UDP/TCP/TLS: codec, transactions, dialogs, registrar, digest auth,
//! transport and the endpoint that ties them together.
//!
//! The codec (`message`, `header`, `uri`, `builder`) is sans-I/O: it turns
//! bytes into a `Message` and builds replies, and knows nothing about
//! sockets or state. Transactions, dialogs, the registrar and digest auth are
//! state machines driven with `now`; only `transport` touches sockets, and
//! `endpoint` is the thin shell that feeds one into the other. This room
//! knows nothing of calls, plans or queues: it hands requests to a
//! transaction user (the call room). `guard` decides, before any parsing,
//! whether a source's message is worth handling at all.

pub mod builder;
pub mod header;
pub mod message;
pub mod uri;

mod absorb;
pub mod dialog;
pub mod digest;
pub mod guard;
pub mod registrar;
pub mod transaction;

pub use builder::{RequestBuilder, ResponseBuilder, new_branch, new_call_id, new_tag, response_to};
pub use header::{
    AuthParams, CSeq, Contacts, HeaderError, NameAddr, Params, ReasonValue, SessionExpires, Via,
};
pub use message::{Frame, FrameError, Limits, Message, Method, ParseError, StreamFramer};
pub use uri::{Host, SipUri, TelUri, Uri};

pub mod endpoint;
pub mod tls;
pub mod transport;
