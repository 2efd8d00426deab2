//! Prometheus metrics for `/metrics`.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// Every metric Hearth exports, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    pub tokens_generated: IntCounter,
    /// Prompt tokens of every request, evaluated or reused.
    pub prompt_tokens: IntCounter,
    /// Prompt tokens the model had to evaluate.
    pub prompt_tokens_evaluated: IntCounter,
    /// Prompt tokens found in the KV cache from an earlier turn.
    pub prompt_tokens_reused: IntCounter,
    /// Tokens of idle conversations parked in RAM outside the KV cache (engine::park).
    pub kv_parked_tokens: IntGauge,
    /// Idle conversations moved out of the KV cache, and parked ones put back.
    pub kv_parks: IntCounter,
    pub kv_restores: IntCounter,
    pub kv_saves: IntCounter,
    pub kv_loads: IntCounter,
    pub kv_saved_bytes: IntGauge,
    pub time_to_first_token: Histogram,
    pub generation_tokens_per_second: Gauge,
    pub queue_depth: IntGauge,
    pub active_sequences: IntGauge,
    pub requests_cancelled: IntCounter,
    pub requests_timed_out: IntCounter,
    pub model_loaded: IntGauge,
    pub model_load_failures: IntCounter,
    /// Seconds spent in each voice stage: `transcribe`, `synthesize`, and the pipeline's
    /// `vad_end_to_transcript`, `transcript_to_first_token`, `first_token_to_first_audio`,
    /// `speech_end_to_first_audio`.
    pub voice_stage_seconds: HistogramVec,
    /// When the served TLS certificate expires (Unix seconds; 0 without TLS).
    pub tls_certificate_expiry: IntGauge,
    /// 1 while the last attempt to get or load a certificate failed (see /api/health).
    pub tls_error: IntGauge,
    /// The governor's level (0 normal, 1 reduced, 2 no_loads, 3 shedding) and its changes.
    pub governor_level: IntGauge,
    pub governor_changes: IntCounter,
    /// Threads the language model generated with at its last decode.
    pub generation_threads: IntGauge,
    /// The machine, as the sampler (`telemetry::Sampler`) last saw it.
    pub system: SystemMetrics,
    /// MQTT telemetry (`mqtt/`).
    pub mqtt: MqttMetrics,
    /// Requests refused by a rate limit (`rate/`), by limit: `requests`, `tokens`,
    /// `generations`, `uploads`.
    pub rate_limited: IntCounterVec,
}

/// The sampler's figures.
#[derive(Clone)]
pub struct SystemMetrics {
    pub cpu_usage: GaugeVec,
    pub load1: Gauge,
    pub load5: Gauge,
    pub load15: Gauge,
    pub memory_total: Gauge,
    pub memory_available: Gauge,
    pub swap_total: Gauge,
    pub swap_used: Gauge,
    pub disk_total: Gauge,
    pub disk_available: Gauge,
    pub temperature: GaugeVec,
    pub throttled: GaugeVec,
    pub resident_memory: Gauge,
    pub samples: IntCounter,
}

/// The MQTT publisher's figures.
#[derive(Clone)]
pub struct MqttMetrics {
    pub connected: IntGauge,
    pub connections: IntCounter,
    pub published: IntCounter,
    pub backlog: IntGauge,
    pub backlog_dropped: IntCounter,
}

/// The `method` label of `http_requests_total`: the methods Hearth serves, and `other` for
/// any other token a client sends. Labels taken as sent would let unauthenticated clients
/// create series without bound (methods are case-sensitive: `get` is `other`).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric name");
    c
}

fn float_gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique metric name");
    g
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, label: &str) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique metric name");
    g
}

impl SystemMetrics {
    fn new(r: &Registry) -> SystemMetrics {
        let g = |name, help| float_gauge(r, name, help);
        SystemMetrics {
            cpu_usage: gauge_vec(r, "cpu_usage_ratio", "Each core's use between the last two samples, 0 to 1", "core"),
            load1: g("load1", "Load average over 1 minute"),
            load5: g("load5", "Load average over 5 minutes"),
            load15: g("load15", "Load average over 15 minutes"),
            memory_total: g("memory_total_bytes", "Physical memory"),
            memory_available: g("memory_available_bytes", "Memory available to new allocations without swapping"),
            swap_total: g("swap_total_bytes", "Swap space"),
            swap_used: g("swap_used_bytes", "Swap space in use"),
            disk_total: g("data_disk_total_bytes", "Size of the file system holding the data directory"),
            disk_available: g(
                "data_disk_available_bytes",
                "Space available to Hearth on the file system holding the data directory",
            ),
            temperature: gauge_vec(r, "temperature_celsius", "Temperature of each thermal zone the board reports", "zone"),
            throttled: gauge_vec(
                r,
                "throttled",
                "1 while the Raspberry Pi firmware reports the condition (under_voltage, frequency_capped, throttled, soft_temperature_limit)",
                "condition",
            ),
            resident_memory: g("process_resident_memory_bytes", "Resident memory of the Hearth process"),
            samples: counter(r, "system_samples_total", "System samples taken"),
        }
    }
}

impl MqttMetrics {
    fn new(r: &Registry) -> MqttMetrics {
        MqttMetrics {
            connected: gauge(r, "mqtt_connected", "1 while connected to the MQTT broker"),
            connections: counter(r, "mqtt_connections_total", "Connections accepted by the MQTT broker"),
            published: counter(
                r,
                "mqtt_messages_published_total",
                "MQTT messages handed to the client to send",
            ),
            backlog: gauge(r, "mqtt_backlog_messages", "State messages kept while the broker is unreachable"),
            backlog_dropped: counter(
                r,
                "mqtt_backlog_dropped_total",
                "State messages dropped, oldest first, because the backlog was full",
            ),
        }
    }
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique metric name");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("hearth".into()), None).expect("valid prefix");
        let r = &registry;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )
        .unwrap();
        let http_latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route")
                .buckets(vec![0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["route"],
        )
        .unwrap();
        let time_to_first_token = Histogram::with_opts(
            HistogramOpts::new("time_to_first_token_seconds", "From request queued to first token")
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )
        .unwrap();
        let generation_tokens_per_second = Gauge::new(
            "generation_tokens_per_second",
            "Generation speed of the last finished request (tokens per second)",
        )
        .unwrap();
        let voice_stage_seconds = HistogramVec::new(
            HistogramOpts::new("voice_stage_seconds", "Time spent in each stage of speech work")
                .buckets(vec![0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0]),
            &["stage"],
        )
        .unwrap();
        registry.register(Box::new(voice_stage_seconds.clone())).expect("unique metric name");
        registry.register(Box::new(http_requests.clone())).expect("unique metric name");
        registry.register(Box::new(http_latency.clone())).expect("unique metric name");
        registry.register(Box::new(time_to_first_token.clone())).expect("unique metric name");
        registry.register(Box::new(generation_tokens_per_second.clone())).expect("unique metric name");
        Metrics {
            http_requests,
            http_latency,
            tokens_generated: counter(r, "tokens_generated_total", "Tokens generated by the model"),
            prompt_tokens: counter(r, "prompt_tokens_total", "Prompt tokens of all requests"),
            prompt_tokens_evaluated: counter(
                r,
                "prompt_tokens_evaluated_total",
                "Prompt tokens the model evaluated",
            ),
            prompt_tokens_reused: counter(
                r,
                "prompt_tokens_reused_total",
                "Prompt tokens reused from the KV cache of an earlier turn",
            ),
            kv_parked_tokens: gauge(
                r,
                "engine_kv_parked_tokens",
                "Tokens of idle conversations held in RAM outside the KV cache until their next turn",
            ),
            kv_parks: counter(
                r,
                "engine_kv_parks_total",
                "Idle conversations moved out of the KV cache into RAM",
            ),
            kv_restores: counter(
                r,
                "engine_kv_restores_total",
                "Parked conversations copied back into the KV cache for their next turn",
            ),
            kv_saves: counter(
                r,
                "engine_kv_saves_total",
                "Conversations that left RAM saved to the disk cache",
            ),
            kv_loads: counter(
                r,
                "engine_kv_loads_total",
                "Conversations read back from the disk cache for their next turn",
            ),
            kv_saved_bytes: gauge(r, "engine_kv_saved_bytes", "Bytes of conversations in the disk cache"),
            time_to_first_token,
            generation_tokens_per_second,
            queue_depth: gauge(r, "engine_queue_depth", "Requests waiting for the inference engine"),
            active_sequences: gauge(r, "engine_active_sequences", "Requests the engine is generating now"),
            requests_cancelled: counter(
                r,
                "requests_cancelled_total",
                "Requests stopped because the client went away",
            ),
            requests_timed_out: counter(r, "requests_timed_out_total", "Requests stopped by the timeout"),
            model_loaded: gauge(r, "model_loaded", "Language models loaded and ready (generation engines)"),
            model_load_failures: counter(r, "model_load_failures_total", "Model files that failed to load"),
            voice_stage_seconds,
            tls_certificate_expiry: gauge(
                r,
                "tls_certificate_expiry_timestamp_seconds",
                "When the served TLS certificate expires (Unix time)",
            ),
            tls_error: gauge(
                r,
                "tls_certificate_error",
                "1 while the last attempt to get or load the TLS certificate failed",
            ),
            governor_level: gauge(
                r,
                "governor_level",
                "How far the governor stepped down: 0 normal, 1 reduced, 2 no_loads, 3 shedding",
            ),
            governor_changes: counter(r, "governor_changes_total", "Changes of the governor's level"),
            generation_threads: gauge(
                r,
                "generation_threads",
                "Threads the language model generated with at its last decode (they follow the load)",
            ),
            system: SystemMetrics::new(r),
            mqtt: MqttMetrics::new(r),
            rate_limited: {
                let c = IntCounterVec::new(
                    Opts::new(
                        "rate_limited_total",
                        "Requests refused by a per-user or per-token limit, by limit",
                    ),
                    &["limit"],
                )
                .expect("valid metric");
                registry.register(Box::new(c.clone())).expect("unique metric name");
                c
            },
            registry,
        }
    }

    /// Records the time one voice stage took.
    pub fn observe_stage(&self, stage: &str, elapsed: std::time::Duration) {
        self.voice_stage_seconds.with_label_values(&[stage]).observe(elapsed.as_secs_f64());
    }

    /// HTTP requests answered so far, every route and status.
    pub fn http_requests_total(&self) -> u64 {
        use prometheus::core::Collector;
        let families = self.http_requests.collect();
        families.iter().flat_map(|f| f.get_metric()).map(|m| m.get_counter().get_value() as u64).sum()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_metrics() {
        let m = Metrics::new();
        m.tokens_generated.inc_by(5);
        m.http_requests.with_label_values(&["/api/chat", "POST", "200"]).inc();
        let text = m.render();
        assert!(text.contains("hearth_tokens_generated_total 5"), "{text}");
        assert!(
            text.contains("hearth_http_requests_total{method=\"POST\",route=\"/api/chat\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("hearth_engine_queue_depth 0"));
    }

    #[test]
    fn only_known_methods_are_labels_of_their_own() {
        for known in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert_eq!(method_label(known), known);
        }
        for odd in ["FOOBAR", "get", "TRACE", "CONNECT", "PROPFIND", "", "G\u{e9}T"] {
            assert_eq!(method_label(odd), "other", "{odd}");
        }
    }
}
