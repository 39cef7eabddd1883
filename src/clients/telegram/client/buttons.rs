//! Inline buttons: sending one, answering its press, hiding a message's keyboard.

use serde::de::IgnoredAny;
use serde_json::json;

use super::TelegramClient;
use crate::clients::telegram::error::TelegramError;
use crate::clients::telegram::types::SentMessage;

impl TelegramClient {
    /// `sendMessage` with one inline button carrying `callback_data`.
    pub async fn send_button(
        &self,
        chat_id: i64,
        text: &str,
        label: &str,
        callback_data: &str,
    ) -> Result<SentMessage, TelegramError> {
        let params = json!({
            "chat_id": chat_id,
            "text": text,
            "reply_markup": {"inline_keyboard": [[{"text": label, "callback_data": callback_data}]]},
        });
        self.send_retrying(chat_id, || self.call_required("sendMessage", &params))
            .await
    }

    /// `answerCallbackQuery`: stops the client's spinner and shows `text` briefly. An answer
    /// is not a chat message: no rate limit applies, only a hold Telegram asked for.
    pub async fn answer_callback_query(
        &self,
        chat_id: i64,
        query_id: &str,
        text: &str,
    ) -> Result<(), TelegramError> {
        let params = json!({"callback_query_id": query_id, "text": text});
        self.held(
            chat_id,
            self.call::<_, IgnoredAny>("answerCallbackQuery", &params, self.request_timeout),
        )
        .await
        .map(drop)
    }

    /// `editMessageReplyMarkup` with no keyboard: hides the buttons of a message.
    pub async fn remove_keyboard(
        &self,
        chat_id: i64,
        message_id: i64,
    ) -> Result<(), TelegramError> {
        let params = json!({"chat_id": chat_id, "message_id": message_id, "reply_markup": {"inline_keyboard": []}});
        self.send_retrying(chat_id, || {
            self.call::<_, IgnoredAny>("editMessageReplyMarkup", &params, self.request_timeout)
        })
        .await
        .map(drop)
    }
}
