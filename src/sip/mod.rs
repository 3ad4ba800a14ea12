//! SIP over UDP/TCP: codec, transactions, dialogs, registrar, digest auth,
//! transport.
//!
//! The codec (`message`, `header`, `uri`, `builder`) is sans-I/O: it turns
//! bytes into a `Message` and builds replies, and knows nothing about
//! sockets or state. Transactions, dialogs, the registrar and digest auth are
//! state machines driven with `now`; only the transport touches sockets.

pub mod builder;
pub mod header;
pub mod message;
pub mod uri;

pub use builder::{RequestBuilder, ResponseBuilder, new_branch, new_call_id, new_tag, response_to};
pub use header::{
    AuthParams, CSeq, Contacts, HeaderError, NameAddr, Params, ReasonValue, SessionExpires, Via,
};
pub use message::{Frame, FrameError, Limits, Message, Method, ParseError, StreamFramer};
pub use uri::{Host, SipUri, TelUri, Uri};
