//! Listening for PostgreSQL notifications, on a connection and a thread of its own.

use super::pg_connect::{config, target, CONNECT_TIMEOUT};
use super::postgres::PgLimits;
use super::DbError;

/// Listens for notifications on a channel of a PostgreSQL server, on a thread of its own;
/// stops when dropped.
pub struct Listener {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Calls `notified` for each notification on `channel` of the server at `url`, and once each
/// time listening starts (notifications sent while the connection was down are lost, so the
/// caller looks for itself). A connection that ends is opened again, after 1 s and up to
/// 30 s while it keeps failing; its TCP keepalives are those of `limits`.
pub fn listen(
    url: &str,
    limits: PgLimits,
    channel: &'static str,
    notified: impl Fn() + Send + 'static,
) -> Result<Listener, DbError> {
    let target = target(url)?;
    let config = config(&target.url, &limits)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("tg-ingest-listen".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("PostgreSQL notifications: no runtime ({e})");
                    return;
                }
            };
            runtime.block_on(async move {
                let work = async {
                    let mut pause = std::time::Duration::from_secs(1);
                    loop {
                        let ended = match &target.tls {
                            Some(tls) => {
                                let tls =
                                    tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone());
                                listen_once(&config, tls, channel, &notified).await
                            }
                            None => {
                                listen_once(&config, tokio_postgres::NoTls, channel, &notified)
                                    .await
                            }
                        };
                        match ended {
                            Ok(true) => pause = std::time::Duration::from_secs(1),
                            Ok(false) => {}
                            Err(e) => log::warn!(
                                "PostgreSQL notifications: {e}; listening again in {} s",
                                pause.as_secs()
                            ),
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(std::time::Duration::from_secs(30));
                    }
                };
                tokio::select! {
                    () = work => {}
                    _ = stopped => {}
                }
            });
        })?;
    Ok(Listener { stop: Some(stop) })
}

/// One connection listening on `channel` until it ends; answers whether listening started.
async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    channel: &str,
    notified: &impl Fn(),
) -> Result<bool, DbError>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    use futures_util::StreamExt;
    let (client, mut connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls))
        .await
        .map_err(|_| {
            DbError::Postgres(format!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })??;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let sql = format!("LISTEN {channel}");
    let start = client.batch_execute(&sql);
    tokio::pin!(start);
    let mut listening = false;
    loop {
        tokio::select! {
            started = &mut start, if !listening => {
                started?;
                listening = true;
                notified();
            }
            message = messages.next() => match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => notified(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(listening),
            },
        }
    }
}
