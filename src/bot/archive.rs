//! Archiving (capability C, intake side): every message of an archived chat is queued, as the
//! raw update, for the raw bucket.

use actix::prelude::*;

use crate::actors::archive::FlushArchive;
use crate::actors::store::{PutOutbox, StoreActor};
use crate::actors::worker::HandlerError;
use crate::config::ArchiveSettings;
use crate::domain::archive::{archive_key, ARCHIVE_OUTBOX};
use crate::domain::inbound::IncomingUpdate;

/// The archive's side of the bot.
pub struct Archiver {
    /// The durable store (the outbox of raw objects).
    pub store: Addr<StoreActor>,
    /// Which chats are archived, and how.
    pub settings: ArchiveSettings,
    /// The raw-bucket writer, when archiving is on.
    pub flush: Option<Recipient<FlushArchive>>,
    /// With replicas: the claims' fence (no row once another replica took the chat over).
    pub fence: Option<std::sync::Arc<crate::actors::fence::ClaimFence>>,
}

impl Archiver {
    /// Queues the raw update for the raw bucket when its chat is archived; returns its key.
    pub async fn archive(&self, update: &IncomingUpdate) -> Result<Option<String>, HandlerError> {
        let Some(key) = archive_key(&self.settings, update) else {
            return Ok(None);
        };
        if let Some(chat) = update.chat_id() {
            super::still_held(self.fence.as_ref(), chat).await?;
        }
        self.store
            .send(PutOutbox {
                kind: ARCHIVE_OUTBOX,
                key: key.clone(),
                payload: update.raw.get().to_string(),
            })
            .await
            .map_err(|e| HandlerError::retryable(format!("store unavailable: {e}")))?
            .map_err(|e| HandlerError::retryable(e.to_string()))?;
        if let Some(flush) = &self.flush {
            flush.do_send(FlushArchive);
        }
        Ok(Some(key))
    }
}
