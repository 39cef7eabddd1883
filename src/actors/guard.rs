//! Starting an actor under a supervisor that also contains panics.
//!
//! actix's `Supervisor` restarts an actor that stops, but a panic in a handler (or in a future
//! the actor spawned) unwinds through the arbiter's task and the actor is gone for good. The
//! [`Guarded`] future polls the actor's context inside `catch_unwind`: a panic is logged and
//! counted, the context is reset (futures the actor spawned are dropped, so whoever waited for
//! their answers gets a mailbox error and retries) and the actor's
//! [`Supervised::restarting`] gives it clean state; its mailbox, and the messages waiting in
//! it, stay. Like `Supervisor`, it also restarts an actor that stops while its address is
//! still held.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{self, Poll};

use actix::dev::channel;
use actix::dev::ContextFut;
use actix::prelude::*;

use super::worker::panic_message;
use crate::obs::metrics::Metrics;

/// Mailbox capacity of a guarded actor (actix's default).
const MAILBOX: usize = 16;

/// An actor's context, polled so that a panic restarts the actor instead of ending it.
pub struct Guarded<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    fut: ContextFut<A, Context<A>>,
    name: &'static str,
    metrics: Arc<Metrics>,
}

/// Starts the actor `f` builds on `arbiter`, guarded; `name` appears in the logs.
pub fn start<A, F>(
    arbiter: &ArbiterHandle,
    name: &'static str,
    metrics: Arc<Metrics>,
    f: F,
) -> Addr<A>
where
    A: Supervised + Actor<Context = Context<A>> + Unpin,
    F: FnOnce(&mut Context<A>) -> A + Send + 'static,
{
    let (tx, rx) = channel::channel(MAILBOX);
    arbiter.spawn_fn(move || {
        let mut ctx = Context::with_receiver(rx);
        let act = f(&mut ctx);
        let fut = ctx.into_future(act);
        actix_rt::spawn(Guarded { fut, name, metrics });
    });
    Addr::new(tx)
}

impl<A> Future for Guarded<A>
where
    A: Supervised + Actor<Context = Context<A>> + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let polled =
                std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.fut).poll(cx)));
            match polled {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(())) => {
                    if !this.fut.restart() {
                        return Poll::Ready(());
                    }
                    log::warn!("{} stopped; its supervisor restarted it", this.name);
                }
                Err(panic) => {
                    this.metrics.actor_restarted(this.name);
                    log::error!(
                        "{} panicked ({}); restarting it with clean state",
                        this.name,
                        panic_message(&*panic)
                    );
                    if !this.fut.restart() {
                        return Poll::Ready(());
                    }
                }
            }
        }
    }
}
