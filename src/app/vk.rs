//! Start-up of the VK bot: the check of the token, the community and its Bots Long Poll API,
//! and the intake actor.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::{retry, StartupError};
use crate::actors::guard;
use crate::actors::pool::Dispatch;
use crate::actors::store::StoreActor;
use crate::clients::vk::{codes, Pace, VkClient, VkConfig, VkError};
use crate::config::Settings;
use crate::intake::poller::PollLease;
use crate::intake::vk_poller::{VkPollerActor, VkSinks};
use crate::obs::metrics::Metrics;

/// Calls per second of one community token, shared by all VK calls: VK allows 20; one less
/// keeps network jitter from ever putting 21 into one second on VK's side.
pub const VK_CALLS_PER_SEC: u32 = 19;

/// Checks that the token works for the community and that the community sends its messages
/// to the Bots Long Poll API; answers the community's name.
pub async fn check(settings: &Settings, pace: &Pace) -> Result<String, StartupError> {
    let vk = &settings.vk;
    let client = VkClient::new(client_config(settings), pace.clone());
    let attempts = vk.startup_attempts.max(1);
    let refused = |source: VkError| match &source {
        VkError::Api { code, message, .. } if *code == codes::AUTHORIZATION => {
            StartupError::VkToken {
                detail: message.clone(),
            }
        }
        VkError::Api { code, message, .. }
            if *code == codes::ACCESS_DENIED || *code == codes::INVALID_PARAMETER =>
        {
            StartupError::VkGroup {
                group: vk.group_id,
                detail: format!("error {code}: {message}"),
            }
        }
        _ => StartupError::Vk {
            api_url: vk.api_url.clone(),
            source,
        },
    };
    let name = retry("VK groups.getById", attempts, VkError::is_retryable, || {
        client.community_name()
    })
    .await
    .map_err(refused)?;
    let (enabled, message_new, message_event) = retry(
        "VK groups.getLongPollSettings",
        attempts,
        VkError::is_retryable,
        || client.long_poll_ready(),
    )
    .await
    .map_err(refused)?;
    if !enabled || !message_new {
        return Err(StartupError::VkLongPoll {
            group: vk.group_id,
            missing: if enabled {
                "its event type message_new is off"
            } else {
                "it is off"
            },
        });
    }
    if !message_event {
        log::warn!(
            "VK community {}: the Bots Long Poll API does not send message_event, so presses of the Rename and page buttons will not arrive (/rename and /files still work); tick it under event types",
            vk.group_id
        );
    }
    Ok(name)
}

/// The VK client settings of these settings.
pub fn client_config(settings: &Settings) -> VkConfig {
    VkConfig::from_settings(&settings.vk, settings.telegram.send_retry_for_secs)
}

/// Starts the VK intake, supervised, on the current arbiter.
pub fn start_poller(
    settings: &Settings,
    pace: &Pace,
    (target, store, metrics): (Recipient<Dispatch>, Addr<StoreActor>, Arc<Metrics>),
    replica: Option<(String, Duration)>,
) -> Addr<VkPollerActor> {
    let (mut config, pace) = (client_config(settings), pace.clone());
    if let Some((holder, ttl)) = &replica {
        // A poll started right after the lease was renewed ends before it could pass on.
        config.wait = config.wait.min(*ttl / 3);
        config.request_timeout = config.request_timeout.min(*ttl / 3);
        log::info!(
            "replica {holder}: polling VK only while holding the VK lease ({} s)",
            ttl.as_secs()
        );
    }
    guard::start(
        &Arbiter::current(),
        "VkPollerActor",
        metrics.clone(),
        move |_| {
            let sinks = VkSinks {
                target: target.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
            };
            let client = VkClient::new(config.clone(), pace.clone()).with_metrics(metrics.clone());
            let poller = VkPollerActor::new(client, sinks);
            match replica.clone() {
                Some((holder, ttl)) => poller.with_lease(PollLease {
                    store: store.clone(),
                    holder,
                    ttl,
                }),
                None => poller,
            }
        },
    )
}
