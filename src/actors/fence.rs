//! The fence of claimed chats: what this replica may still do with a chat's updates.
//!
//! With replicas, a chat's journaled updates are worked by the replica holding its claim
//! ([`super::claims`]). A replica can lose a claim without noticing at once: paused (a VM
//! freeze, a long stall) or cut off from the store past the claim's lifetime, another replica
//! takes the chat over. The fence, kept up to date by the claims' renewals, is asked by the
//! workers before each update of a claimed chat, and by [`FencedChat`] before each message,
//! edit or upload of an update in hand: a lost chat's queued updates are dropped, and the
//! update in hand sends nothing more and is left to the new holder (the journal still has
//! it). What was sent before the loss was noticed is the only repeat a takeover can cause.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;

use crate::domain::chat::{ChatError, ChatPort, Keyboard, Press, Reply};

/// What this replica may do with a claimed chat's updates now, as its workers ask before
/// starting each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The chat is this replica's, confirmed by a renewal recent enough: work on it.
    Held,
    /// Another replica holds the chat (it took it over while this one could not renew, or
    /// this one gave it up): its queued updates are left to that replica.
    Lost,
    /// The last renewal is too old to be sure (the process was paused, the store is slow):
    /// wait for the next one.
    Unconfirmed,
}

/// What the workers tell the claims.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Worked {
    /// An update is done with (its end is written, or it was set aside).
    Done(i64),
    /// Updates handed over were dropped unhandled (their chat looked lost): they may be
    /// handed over again if the chat turns out to be this replica's.
    Left(Vec<i64>),
}

/// The chats this replica holds as far as it knows, and until when that is sure: kept by the
/// claims from their renewals and rounds, asked by the workers and [`FencedChat`].
#[derive(Default)]
pub struct ClaimFence {
    state: Mutex<FenceState>,
    /// Chats whose update in hand is a claimed (journaled) one: their effects are fenced.
    in_hand: Mutex<HashSet<i64>>,
    /// The claims, told of what the workers did.
    claims: OnceLock<Recipient<Worked>>,
}

impl std::fmt::Debug for ClaimFence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimFence")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct FenceState {
    held: HashSet<i64>,
    /// Until when the claims are sure to be this replica's (a renewal's start plus most of
    /// their lifetime).
    sure_until: Option<Instant>,
    /// When the store was read for the `held` in force: an older read never replaces it.
    read_at: Option<Instant>,
    /// How long a claim lasts.
    ttl: Option<Duration>,
}

/// How often a fenced effect asks again while the standing is unconfirmed.
const RECHECK: Duration = Duration::from_millis(50);

impl ClaimFence {
    /// Where this replica stands with `chat`.
    pub fn standing(&self, chat: i64) -> Standing {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.held.contains(&chat) {
            Standing::Lost
        } else if state.sure_until.is_some_and(|t| Instant::now() < t) {
            Standing::Held
        } else {
            Standing::Unconfirmed
        }
    }

    /// Whether an effect of the update in hand in `chat` may go out: yes unless that update
    /// is a claimed one and the chat is lost. While the standing is unconfirmed (this process
    /// was paused, renewals are late) it waits for a renewal, at most a claim's lifetime;
    /// still unconfirmed then, the claim has run out: no.
    pub async fn allows(&self, chat: i64) -> bool {
        let fenced = self
            .in_hand
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&chat);
        if !fenced {
            return true;
        }
        let ttl = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ttl
            .unwrap_or(Duration::from_secs(30));
        let deadline = Instant::now() + ttl;
        loop {
            match self.standing(chat) {
                Standing::Held => return true,
                Standing::Lost => return false,
                Standing::Unconfirmed if Instant::now() >= deadline => return false,
                Standing::Unconfirmed => actix_rt::time::sleep(RECHECK).await,
            }
        }
    }

    /// A worker starts (`true`) or ends (`false`) a claimed update of `chat`.
    pub fn in_hand(&self, chat: i64, claimed: bool) {
        let mut in_hand = self.in_hand.lock().unwrap_or_else(|e| e.into_inner());
        if claimed {
            in_hand.insert(chat);
        } else {
            in_hand.remove(&chat);
        }
    }

    /// Tells the claims what a worker did.
    pub fn worked(&self, what: Worked) {
        if let Some(claims) = self.claims.get() {
            claims.do_send(what);
        }
    }

    /// The claims to tell (set once).
    pub(super) fn attach(&self, claims: Recipient<Worked>) {
        let _ = self.claims.set(claims);
    }

    /// A renewal begun at `read_at` found these chats held, each for `ttl` from then.
    pub(super) fn renewed(&self, read_at: Instant, held: HashSet<i64>, ttl: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // A margin for the clocks: the store's expiry runs from its own, later, reading.
        let sure = read_at + ttl.saturating_sub(ttl / 10);
        state.sure_until = Some(state.sure_until.map_or(sure, |t| t.max(sure)));
        state.ttl = Some(ttl);
        if state.read_at.is_none_or(|at| read_at >= at) {
            state.held = held;
            state.read_at = Some(read_at);
        }
    }

    /// A round begun at `read_at` listed these chats as held (with work left). A listing is
    /// cut at a number of updates, so a chat missing from it may still be held: only a
    /// renewal (which answers every chat held) says a chat was lost; a listing adds the chats
    /// just claimed.
    pub(super) fn listed(&self, read_at: Instant, chats: HashSet<i64>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.read_at.is_none_or(|at| read_at >= at) {
            state.held.extend(chats);
        }
    }
}

/// A [`ChatPort`] whose messages, edits and answers for a claimed update go out only while
/// this replica holds the update's chat ([`ClaimFence::allows`]).
pub struct FencedChat {
    inner: std::rc::Rc<dyn ChatPort>,
    fence: Arc<ClaimFence>,
}

impl FencedChat {
    /// `inner`, fenced by `fence`.
    pub fn new(inner: std::rc::Rc<dyn ChatPort>, fence: Arc<ClaimFence>) -> Self {
        Self { inner, fence }
    }

    async fn check(&self, chat: i64) -> Result<(), ChatError> {
        if self.fence.allows(chat).await {
            Ok(())
        } else {
            Err(taken_over(chat))
        }
    }
}

/// The error of an effect held back because another replica took the chat over.
fn taken_over(chat: i64) -> ChatError {
    ChatError {
        message: format!(
            "chat_id={chat} was taken over by another replica; it handles this update"
        ),
        retryable: true,
        not_modified: false,
    }
}

impl ChatPort for FencedChat {
    fn send<'a>(
        &'a self,
        chat: i64,
        text: &'a str,
        reply: Reply<'a>,
    ) -> LocalBoxFuture<'a, Result<i64, ChatError>> {
        async move {
            self.check(chat).await?;
            self.inner.send(chat, text, reply).await
        }
        .boxed_local()
    }

    fn edit<'a>(
        &'a self,
        chat: i64,
        message_id: i64,
        text: &'a str,
        keyboard: Option<&'a Keyboard>,
    ) -> LocalBoxFuture<'a, Result<(), ChatError>> {
        async move {
            self.check(chat).await?;
            self.inner.edit(chat, message_id, text, keyboard).await
        }
        .boxed_local()
    }

    fn answer<'a>(
        &'a self,
        chat: i64,
        press: &'a Press,
        text: &'a str,
    ) -> LocalBoxFuture<'a, Result<(), ChatError>> {
        async move {
            self.check(chat).await?;
            self.inner.answer(chat, press, text).await
        }
        .boxed_local()
    }

    fn still_ours(&self, chat: i64) -> LocalBoxFuture<'_, Result<(), ChatError>> {
        self.check(chat).boxed_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_renewal_says_a_chat_was_lost() {
        let fence = ClaimFence::default();
        let t0 = Instant::now();
        fence.renewed(t0, [1, 2].into(), Duration::from_secs(30));
        assert_eq!(fence.standing(2), Standing::Held);
        // A later round's listing, cut before chat 2's updates, and a chat just claimed.
        fence.listed(t0 + Duration::from_millis(1), [1, 3].into());
        assert_eq!(fence.standing(2), Standing::Held, "not listed is not lost");
        assert_eq!(fence.standing(3), Standing::Held);
        fence.renewed(
            t0 + Duration::from_millis(2),
            [1].into(),
            Duration::from_secs(30),
        );
        assert_eq!(fence.standing(2), Standing::Lost);
        assert_eq!(fence.standing(3), Standing::Lost);
        // An older reading changes nothing.
        fence.listed(t0, [2].into());
        assert_eq!(fence.standing(2), Standing::Lost);
    }
}
