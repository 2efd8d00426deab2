//! MQTT telemetry (`[mqtt]`, off by default): the box's state as JSON at an interval,
//! Home Assistant discovery, and availability through the last will.
//!
//! One thread (`hearth-mqtt`) runs a small tokio runtime of its own with two tasks: one
//! keeps polling rumqttc's event loop (which connects, reconnects and sends), the other
//! decides what to publish. Handlers never touch it: the state is read from the metrics
//! and the sampler. rumqttc keeps only an in-memory queue and drops it when the broker
//! starts a clean session, so state messages made while the broker is away wait here, in
//! a bounded [`Backlog`], and go out after the next CONNACK. Every CONNACK (a clean
//! session has forgotten everything) and every `online` from Home Assistant's status
//! topic re-announces: discovery config and `online`, both retained.
//!
//! With a [`Control`], the box also takes commands on `<base>/<id>/command/<name>`
//! (`commands.rs`): read on the publishing task, run one at a time by a third task, and
//! answered on `<base>/<id>/result`. The interval and the allowlist follow a config
//! reload ([`crate::control::LiveSettings`]).

pub mod commands;
mod discovery;
mod state;
mod tls;

pub use discovery::{config as discovery_config, Topics, OFFLINE, ONLINE};
pub use state::{Sources, State};

use crate::config::{MqttSettings, Settings};
use crate::control::Control;
use crate::telemetry::MqttMetrics;
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The running publisher; [`Mqtt::stop`] says `offline` and disconnects.
pub struct Mqtt {
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

/// What the publishing task needs besides the client.
struct Plan {
    topics: Topics,
    every: Duration,
    sources: Sources,
    metrics: MqttMetrics,
    backlog: Backlog,
    /// Commands: what runs them and the settings they follow; `None`: no commands.
    control: Option<(Control, watch::Receiver<Arc<Settings>>)>,
    /// `[mqtt] commands`, as last (re)loaded.
    allowed: Vec<String>,
}

impl Mqtt {
    /// Starts publishing when `[mqtt] enabled`; `Ok(None)` when it is off. Errors (an
    /// unreadable certificate or password file) name the setting. With `control`,
    /// commands are read too (those `[mqtt] commands` allows).
    pub fn start(
        settings: &MqttSettings,
        tls_dir: &Path,
        sources: Sources,
        control: Option<Control>,
    ) -> Result<Option<Mqtt>, String> {
        if !settings.enabled {
            return Ok(None);
        }
        let topics = Topics::new(settings);
        let options = options(settings, &topics, tls_dir)?;
        let broker = options.broker_address();
        let capacity = settings.backlog.min(1000) + 32;
        let plan = Plan {
            metrics: sources.metrics.mqtt.clone(),
            backlog: Backlog::new(settings.backlog),
            every: Duration::from_secs(settings.interval_secs),
            topics,
            sources,
            control: control.map(|c| {
                let live = c.settings.subscribe();
                (c, live)
            }),
            allowed: settings.commands.clone(),
        };
        tracing::info!(
            broker = %format!("{}:{}", broker.0, broker.1), device = %plan.topics.device_id,
            state = %plan.topics.state, every_secs = settings.interval_secs, commands = ?plan.allowed,
            "MQTT telemetry"
        );
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("hearth-mqtt".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => return tracing::error!(error = %e, "cannot start the MQTT runtime"),
                };
                let mut plan = plan;
                // The publisher never gives up: a client that ended or panicked is replaced.
                while !*stopped.borrow() {
                    let (client, events) = AsyncClient::new(options.clone(), capacity);
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        runtime.block_on(publish(client, events, &mut plan, stopped.clone()))
                    }));
                    if *stopped.borrow() {
                        return;
                    }
                    match run {
                        Ok(()) => tracing::error!("the MQTT client stopped; starting a new one"),
                        Err(_) => tracing::error!("the MQTT publisher panicked; starting a new one"),
                    }
                    plan.metrics.connected.set(0);
                    std::thread::sleep(Duration::from_secs(5));
                }
            })
            .map_err(|e| format!("cannot start the MQTT thread: {e}"))?;
        Ok(Some(Mqtt { stop, thread }))
    }

    /// Publishes `offline` (retained), disconnects, and waits at most `wait` for that.
    pub fn stop(self, wait: Duration) {
        let _ = self.stop.send(true);
        let deadline = std::time::Instant::now() + wait;
        while !self.thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn options(settings: &MqttSettings, topics: &Topics, tls_dir: &Path) -> Result<MqttOptions, String> {
    let broker = settings.broker()?;
    let mut o = MqttOptions::new(format!("hearth-{}", topics.device_id), broker.host, broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(true);
    // The discovery config outgrows rumqttc's default of 10 KiB.
    o.set_max_packet_size(256 * 1024, 256 * 1024);
    o.set_last_will(LastWill::new(&topics.availability, OFFLINE, QoS::AtLeastOnce, true));
    match settings.read_password()? {
        Some(password) => {
            o.set_credentials(&settings.username, password);
        }
        None if !settings.username.is_empty() => {
            o.set_credentials(&settings.username, "");
        }
        None => {}
    }
    if broker.tls {
        let config = tls::client_config(settings, tls_dir)?;
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config))));
    }
    Ok(o)
}

/// Keeps the event loop polled: it connects, sends what the client queued, answers pings,
/// and after an error reconnects on the next poll (after a pause, growing to 5 s).
/// Forwards what the publisher acts on; ends when the publisher is gone.
async fn drive(mut events: EventLoop, tx: mpsc::Sender<Result<Event, String>>) {
    let mut failures = 0u32;
    loop {
        match events.poll().await {
            Ok(event) => {
                failures = 0;
                let wanted = matches!(
                    event,
                    Event::Incoming(Packet::ConnAck(_) | Packet::Publish(_))
                        | Event::Outgoing(rumqttc::Outgoing::Disconnect)
                );
                if wanted && tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                if tx.send(Err(e.to_string())).await.is_err() {
                    return;
                }
                failures += 1;
                tokio::time::sleep(Duration::from_millis(500 << failures.min(3)).min(Duration::from_secs(5)))
                    .await;
            }
        }
    }
}

/// Publishes until told to stop (or until the driver ends, which the caller treats as a
/// failure).
async fn publish(
    client: AsyncClient,
    events: EventLoop,
    plan: &mut Plan,
    mut stopped: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::channel(64);
    let driver = tokio::spawn(drive(events, tx));
    let mut runner = plan.control.as_ref().map(|(control, _)| commands::Runner::start(control.clone()));
    let mut connected = false;
    let mut last_error: Option<String> = None;
    let mut tick = tokio::time::interval(plan.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // A change of the governor's level is published at once, not at the next interval.
    let mut governor = plan.sources.models.governor().changes();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            event = rx.recv() => match event {
                None => break,
                Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    connected = true;
                    last_error = None;
                    plan.metrics.connected.set(1);
                    plan.metrics.connections.inc();
                    tracing::info!(device = %plan.topics.device_id, "connected to the MQTT broker");
                    announce(&client, plan, true);
                    publish_state(&client, plan, connected);
                }
                Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    if Some(&p.topic) == plan.topics.ha_status.as_ref() && p.payload.as_ref() == ONLINE.as_bytes() {
                        tracing::info!("Home Assistant came online: announcing the device again");
                        announce(&client, plan, false);
                    } else if let (Some(name), Some(runner)) = (command_name(&plan.topics, &p.topic), &runner) {
                        let request = commands::read(name, &p.payload, p.retain, &plan.allowed);
                        if let Some((request, refused)) = runner.submit(request) {
                            answer(&client, plan, &request, refused);
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    if connected || last_error.as_ref() != Some(&error) {
                        // rumqttc's errors name the broker and the cause, never the credentials.
                        tracing::warn!(%error, backlog = plan.backlog.len(), "MQTT broker unreachable; retrying");
                    }
                    connected = false;
                    plan.metrics.connected.set(0);
                    last_error = Some(error);
                }
            },
            _ = tick.tick() => publish_state(&client, plan, connected),
            Ok(()) = governor.changed() => publish_state(&client, plan, connected),
            done = next_result(&mut runner) => match done {
                Some((request, outcome)) => answer(&client, plan, &request, outcome),
                None => {
                    tracing::error!("the MQTT command task ended; starting a new one");
                    runner = plan.control.as_ref().map(|(control, _)| commands::Runner::start(control.clone()));
                }
            },
            changed = settings_changed(&mut plan.control) => {
                if let Some(settings) = changed {
                    let every = Duration::from_secs(settings.mqtt.interval_secs);
                    if every != plan.every {
                        tracing::info!(every_secs = every.as_secs(), "MQTT state interval changed");
                        plan.every = every;
                        tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    }
                    if settings.mqtt.commands != plan.allowed {
                        tracing::info!(commands = ?settings.mqtt.commands, "MQTT commands allowed changed");
                        plan.allowed = settings.mqtt.commands.clone();
                        // Home Assistant's command entities follow the allowlist.
                        if connected {
                            announce(&client, plan, false);
                        }
                    }
                }
            }
        }
    }
    // Going away on purpose: say so (the last will is for when we cannot).
    if connected {
        let _ = client.try_publish(&plan.topics.availability, QoS::AtLeastOnce, true, OFFLINE);
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(event) = rx.recv().await {
                if matches!(event, Err(_) | Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) {
                    break;
                }
            }
        })
        .await;
    }
    plan.metrics.connected.set(0);
    driver.abort();
}

/// The command's name when `topic` is `<commands>/<name>`.
fn command_name<'t>(topics: &Topics, topic: &'t str) -> Option<&'t str> {
    topic.strip_prefix(topics.commands.as_str())?.strip_prefix('/').filter(|n| !n.contains('/'))
}

/// The next command's outcome; never when there are no commands.
async fn next_result(
    runner: &mut Option<commands::Runner>,
) -> Option<(commands::Request, commands::Outcome)> {
    match runner {
        Some(runner) => runner.next().await,
        None => std::future::pending().await,
    }
}

/// The settings after a reload changed them; never when there is no control.
async fn settings_changed(
    control: &mut Option<(Control, watch::Receiver<Arc<Settings>>)>,
) -> Option<Arc<Settings>> {
    match control {
        Some((_, live)) => match live.changed().await {
            Ok(()) => Some(live.borrow_and_update().clone()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Publishes a command's outcome and logs it (the code, never an announcement's text).
fn answer(client: &AsyncClient, plan: &Plan, request: &commands::Request, outcome: commands::Outcome) {
    match &outcome {
        Ok(_) => tracing::info!(command = %request.name, id = %request.id, "MQTT command done"),
        Err(e) => tracing::warn!(
            command = %request.name, id = %request.id, code = e.code.code(), error = %e.message,
            "MQTT command refused or failed"
        ),
    }
    let message = commands::result(request, &outcome).to_string();
    send(client, plan, &plan.topics.result, message.into_bytes(), false);
}

/// Discovery config and `online`, retained, and the subscriptions to Home Assistant's
/// status and to the commands (a clean session forgot them).
fn announce(client: &AsyncClient, plan: &Plan, subscribe: bool) {
    let topics = &plan.topics;
    if let Some(discovery) = &topics.discovery {
        let with_temperature = !plan.sources.sampler.latest().temperatures.is_empty();
        let config = discovery::config(topics, with_temperature, &plan.allowed).to_string();
        send(client, plan, discovery, config.into_bytes(), true);
    }
    send(client, plan, &topics.availability, ONLINE.as_bytes().to_vec(), true);
    if let (Some(status), true) = (&topics.ha_status, subscribe) {
        if let Err(e) = client.try_subscribe(status, QoS::AtLeastOnce) {
            tracing::warn!(error = %e, "cannot subscribe to Home Assistant's status");
        }
    }
    if subscribe && plan.control.is_some() {
        if let Err(e) = client.try_subscribe(format!("{}/+", topics.commands), QoS::AtLeastOnce) {
            tracing::warn!(error = %e, "cannot subscribe to the command topic");
        }
    }
}

fn send(client: &AsyncClient, plan: &Plan, topic: &str, payload: Vec<u8>, retain: bool) -> bool {
    match client.try_publish(topic, QoS::AtLeastOnce, retain, payload) {
        Ok(()) => {
            plan.metrics.published.inc();
            true
        }
        Err(e) => {
            tracing::debug!(error = %e, topic, "MQTT client queue full");
            false
        }
    }
}

/// The state now, into the backlog; while connected the backlog is handed to the client,
/// oldest first. State is retained so a new subscriber sees the last one at once.
fn publish_state(client: &AsyncClient, plan: &mut Plan, connected: bool) {
    let state = serde_json::to_vec(&plan.sources.state()).expect("state serializes");
    if plan.backlog.push(state) {
        plan.metrics.backlog_dropped.inc();
    }
    if connected {
        while let Some(next) = plan.backlog.front() {
            if !send(client, plan, &plan.topics.state, next.to_vec(), true) {
                break;
            }
            plan.backlog.pop();
        }
    }
    plan.metrics.backlog.set(plan.backlog.len() as i64);
}

/// State messages waiting for the broker, at most `limit`; the oldest go first.
#[derive(Debug)]
pub struct Backlog {
    items: VecDeque<Vec<u8>>,
    limit: usize,
}

impl Backlog {
    pub fn new(limit: usize) -> Backlog {
        Backlog { items: VecDeque::new(), limit: limit.max(1) }
    }

    /// Adds a message; `true` when the oldest was dropped to make room.
    pub fn push(&mut self, item: Vec<u8>) -> bool {
        let dropped = self.items.len() >= self.limit;
        if dropped {
            self.items.pop_front();
        }
        self.items.push_back(item);
        dropped
    }

    pub fn front(&self) -> Option<&[u8]> {
        self.items.front().map(Vec::as_slice)
    }

    pub fn pop(&mut self) -> Option<Vec<u8>> {
        self.items.pop_front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_keeps_the_newest_and_counts_the_dropped() {
        let mut b = Backlog::new(3);
        let dropped = (0..5u8).filter(|i| b.push(vec![*i])).count();
        assert_eq!((dropped, b.len()), (2, 3));
        assert_eq!(b.front(), Some(&[2u8][..]));
        assert_eq!(b.pop(), Some(vec![2]));
        assert_eq!(b.pop(), Some(vec![3]));
        assert_eq!(b.pop(), Some(vec![4]));
        assert!(b.is_empty() && b.pop().is_none());
    }
}
