//! Requests of the conversation about people: who was greeted, and the `[document]`
//! acknowledgement of each event (sent once).

use std::sync::Arc;

use actix::prelude::*;

use super::StoreActor;
use crate::domain::chat::Person;
use crate::store::{Store, StoreError};

store_request!(
    /// Whether a person was greeted.
    IsGreeted(pub Person) -> bool,
    |s, m| s.is_greeted(m.0.platform.as_str(), m.0.user)
);

store_request!(
    /// Remembers that a person was greeted.
    SetGreeted(pub Person) -> (),
    |s, m| s.set_greeted(m.0.platform.as_str(), m.0.user)
);

store_request!(
    /// The message that acknowledged an event, if one was sent.
    AckOf(pub String) -> Option<i64>,
    |s, m| s.ack_of(&m.0)
);

store_request!(
    /// Remembers the message that acknowledged an event.
    RecordAck {
        /// The event's reference.
        pub event: String,
        /// The acknowledgement's message.
        pub message_id: i64,
    } -> (),
    |s, m| s.record_ack(&m.event, m.message_id)
);
