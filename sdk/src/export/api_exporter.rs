//! The API sink as a [`SpanExporter`]: `clean_span_to_proto`, then one `ExportSpansRequest` per batch (§9).

use super::api::{ApiSink, ApiSinkConfig};
use super::{ExportOutcome, SpanExporter};
use crate::clean_span::CleanSpan;
use crate::clean_span_to_proto::clean_span_to_proto;
use crate::config::Settings;
use crate::error::{Error, Result};

/// Exports batches to the Tusk API with retries and a circuit breaker.
#[derive(Debug)]
pub(crate) struct ApiExporter {
    sink: ApiSink,
}

impl ApiExporter {
    pub(crate) fn from_settings(settings: &Settings) -> Result<ApiExporter> {
        let (Some(key), Some(service)) = (&settings.api_key, &settings.service_id) else {
            return Err(Error::ApiExport("API export needs an API key and a service id".into()));
        };
        if cfg!(not(feature = "tls")) && settings.api_url.starts_with("https:") {
            return Err(Error::ApiExport(format!(
                "{} is an https URL but drift-sdk was built without its `tls` feature; enable it or use http",
                settings.api_url
            )));
        }
        let mut cfg = ApiSinkConfig::new(key.clone(), service.clone(), settings.environment.clone());
        cfg.base_url = settings.api_url.clone();
        let sink = ApiSink::new(cfg).map_err(|e| Error::ApiExport(e.to_string()))?;
        Ok(ApiExporter { sink })
    }
}

impl SpanExporter for ApiExporter {
    fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
        let spans = batch.iter().map(clean_span_to_proto).collect();
        let outcome = self.sink.send(spans);
        ExportOutcome {
            exported: outcome.exported,
            failed: outcome.failed,
        }
    }

    fn circuit_open(&self) -> bool {
        self.sink.circuit_open()
    }
}
