//! The claim actor's life: listening for other replicas' journal writes, renewing this
//! replica's claims every third of their lifetime, and joining the replicas at start.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{ClaimActor, WorkArrived, IDLE_LONGEST};
use crate::actors::store::{AdoptClaims, RenewClaims};

impl Actor for ClaimActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.listen(ctx);
        self.renew_every_third(ctx);
        self.join(ctx);
        log::info!(
            "replica {}: working the journal by chat claims (at most {} chats at once, claims last {} s)",
            self.me.holder,
            self.me.max_chats,
            self.me.ttl.as_secs()
        );
    }
}

impl ClaimActor {
    /// Rounds start when any replica writes to the journal (PostgreSQL's `LISTEN`).
    fn listen(&mut self, ctx: &mut Context<Self>) {
        self.fence.attach(ctx.address().recipient());
        if let (Some((url, limits)), None) = (&self.notices, &self.listener) {
            let me = ctx.address().recipient::<WorkArrived>();
            match crate::store::db::listen(url, *limits, crate::store::JOURNAL_CHANNEL, move || {
                me.do_send(WorkArrived)
            }) {
                Ok(listener) => self.listener = Some(listener),
                Err(e) => log::warn!(
                    "chat claims: cannot listen for other replicas' journal writes ({e}); rounds find them within {} s",
                    IDLE_LONGEST.as_secs()
                ),
            }
        }
    }

    /// Renews this replica's claims every third of their lifetime; the fence learns which
    /// chats are still held.
    fn renew_every_third(&mut self, ctx: &mut Context<Self>) {
        let renew_every = (self.me.ttl / 3).max(Duration::from_millis(200));
        ctx.run_interval(renew_every, |act, ctx| {
            let renew = RenewClaims {
                holder: act.me.holder.clone(),
                ttl_ms: act.ttl_ms(),
            };
            let (store, fence, ttl) = (act.store.clone(), act.fence.clone(), act.me.ttl);
            let read_at = Instant::now();
            ctx.spawn(
                async move {
                    match store.send(renew).await {
                        Ok(Ok(held)) => fence.renewed(read_at, held.into_iter().collect(), ttl),
                        Ok(Err(e)) => log::error!("chat claims: cannot renew this replica's claims ({e}); they run out unless the store answers again"),
                        Err(_) => {}
                    }
                }
                .into_actor(act)
                // Chats may have been lost, or claims of others run out.
                .map(|_, act, ctx| act.wake(ctx)),
            );
        });
    }

    /// Counted among the live replicas, adopts the claims of an earlier process of this name,
    /// then runs the first round.
    fn join(&mut self, ctx: &mut Context<Self>) {
        let (store, me, fence) = (self.store.clone(), self.me.clone(), self.fence.clone());
        let counted = RenewClaims {
            holder: me.holder.clone(),
            ttl_ms: self.ttl_ms(),
        };
        let read_at = Instant::now();
        ctx.spawn(
            async move {
                // Counted among the live replicas before the first claim.
                if let Ok(Ok(held)) = store.send(counted).await {
                    fence.renewed(read_at, held.into_iter().collect(), me.ttl);
                }
                match store.send(AdoptClaims(me.holder.clone())).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => log::info!(
                        "replica {}: {n} chats claimed by an earlier process of this name are worked on again",
                        me.holder
                    ),
                    Ok(Err(e)) => log::warn!("chat claims: cannot adopt earlier claims ({e})"),
                    Err(e) => log::warn!("chat claims: store unavailable ({e})"),
                }
            }
            .into_actor(self)
            .map(|_, act, ctx| act.round(ctx)),
        );
    }
}
