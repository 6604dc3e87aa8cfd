//! Logs and traces: the log format (`log.format`), the OTLP exporter (off
//! unless `telemetry.otlp_endpoint` is set), and the W3C trace context a
//! message carries through a service (`continue_trace`).

use crate::settings::{LogFormat, LogSettings, TelemetrySettings};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The path an OTLP/HTTP collector takes traces on.
const TRACES_PATH: &str = "/v1/traces";

/// What must be flushed before the process exits.
pub struct Telemetry {
    /// `None` when no traces are exported.
    provider: Option<SdkTracerProvider>,
}

type Layered = tracing_subscriber::layer::Layered<EnvFilter, Registry>;

/// Install the process's subscriber: logs on stderr as text or JSON, and,
/// when `telemetry.otlp_endpoint` is set, spans exported to it in batches.
/// `RUST_LOG` overrides the level of both.
pub fn init(log: &LogSettings, telemetry: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn,lapin=warn".into());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let mut layers: Vec<Box<dyn Layer<Layered> + Send + Sync>> = vec![match log.format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    }];
    let provider = match telemetry.otlp_endpoint.trim() {
        "" => None,
        endpoint => {
            let provider = provider(endpoint, &telemetry.service_name)?;
            let tracer = provider.tracer("dynzero");
            layers.push(tracing_opentelemetry::layer().with_tracer(tracer).boxed());
            Some(provider)
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init()?;
    Ok(Telemetry { provider })
}

fn provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        )
        .build())
}

/// The collector's traces URL: `/v1/traces` under its base URL.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        base.to_string()
    } else {
        format!("{base}{TRACES_PATH}")
    }
}

impl Telemetry {
    /// Export what is still buffered, then stop the exporter. Blocking
    /// work (the exporter has its own thread and HTTP client), so it runs
    /// off the async workers.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("dynzero: flushing traces failed: {e}"),
            Err(e) => eprintln!("dynzero: flushing traces failed: {e}"),
        }
    }
}

/// Make `span` (not yet entered) continue the trace of a received W3C
/// `traceparent` (and `tracestate`), and return the `traceparent` that what
/// the span causes carries onward: the same trace id, the span's own id.
///
/// With the OTLP exporter on, that is the exported span's id (and a span
/// without a received parent starts a new trace, which is carried on too).
/// With it off, the received trace id with a span id made here, so the
/// trace id still goes through end to end; nothing received, nothing onward.
/// A `traceparent` that is not valid W3C trace context counts as none.
pub fn continue_trace(
    span: &Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    if let Some(traceparent) = traceparent {
        carrier.insert("traceparent".into(), traceparent.into());
        if let Some(tracestate) = tracestate {
            carrier.insert("tracestate".into(), tracestate.into());
        }
    }
    let parent = TraceContextPropagator::new().extract(&carrier);
    let received = parent.span().span_context().clone();
    if received.is_valid() {
        // Fails only when no exporter is installed: then the span id is made below.
        let _ = span.set_parent(parent);
    }
    let own = span.context().span().span_context().clone();
    if own.is_valid() {
        return Some(render(&own, own.span_id()));
    }
    received
        .is_valid()
        .then(|| render(&received, new_span_id()))
}

/// Whether `traceparent` is valid W3C trace context.
pub fn is_traceparent(traceparent: &str) -> bool {
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid()
}

fn render(context: &SpanContext, span_id: SpanId) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        span_id,
        context.trace_flags().to_u8()
    )
}

fn new_span_id() -> SpanId {
    loop {
        let id = SpanId::from_bytes(rand::random::<[u8; 8]>());
        if id != SpanId::INVALID {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn without_an_exporter_the_trace_id_goes_on_with_a_new_span_id() {
        let onward = continue_trace(&Span::none(), Some(RECEIVED), None).unwrap();
        let parts: Vec<&str> = onward.split('-').collect();
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parts[2].len(), 16);
        assert_ne!(parts[2], "00f067aa0ba902b7");
        assert_eq!(parts[3], "01");
    }

    #[test]
    fn an_invalid_or_missing_traceparent_carries_nothing_on() {
        for received in [
            None,
            Some(""),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
            Some("not a traceparent"),
        ] {
            assert_eq!(
                continue_trace(&Span::none(), received, None),
                None,
                "{received:?}"
            );
        }
    }

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
