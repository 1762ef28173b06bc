//! Configuration: the builder first, then the environment, then `.tusk/config.yaml` (§14 of the format).
//!
//! [`DriftBuilder`] collects what the host sets in code; [`DriftBuilder::init`](crate::DriftBuilder::init) resolves
//! it against the environment and the config file into [`Settings`], which is what the rest of the SDK reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sampling::{self, SamplingMode};
use crate::transform::{self, TransformRule};

/// The default queue capacity in records (§10.1).
pub const DEFAULT_QUEUE_CAPACITY: usize = 2048;
/// The default export batch size in records (§10.2).
pub const DEFAULT_BATCH_SIZE: usize = 512;
/// The default longest wait between exports (§10.2).
pub const DEFAULT_SCHEDULED_DELAY: Duration = Duration::from_secs(2);
/// The default timeout of `flush()` and of joining the export thread at shutdown (§10.4).
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// The default number of open trace files remembered (§8.1).
pub const DEFAULT_TRACE_FILE_LRU: usize = 1000;
/// The default nice value of the export thread on Linux: the same as the request threads. A higher value shortens
/// the tail latency of a saturated app but drops spans (see `DriftBuilder::export_thread_nice`).
pub const DEFAULT_EXPORT_THREAD_NICE: i32 = 0;
/// The default trace directory, relative to the current directory (§8.1).
pub const DEFAULT_TRACES_DIR: &str = ".tusk/traces";
/// The default API base URL (§9.1).
pub const DEFAULT_API_URL: &str = "https://api.usetusk.ai";
/// The default environment name (§14.2).
pub const DEFAULT_ENVIRONMENT: &str = "development";
/// The default base sampling rate (§11.4).
pub const DEFAULT_SAMPLING_RATE: f64 = 1.0;
/// The default adaptive floor rate (§14.4).
pub const DEFAULT_MIN_SAMPLING_RATE: f64 = 0.001;

/// Whether the SDK records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Record inbound and outbound HTTP spans.
    Record,
    /// Pass everything through: no span, no thread, no file.
    Disabled,
}

impl Mode {
    /// Parses `TUSK_DRIFT_MODE` (case-insensitive). `REPLAY` is not supported here and means `Disabled` with a warning;
    /// anything unknown means `Disabled`.
    pub fn from_env_value(v: &str) -> Mode {
        match v.trim().to_ascii_uppercase().as_str() {
            "RECORD" => Mode::Record,
            "REPLAY" => {
                tracing::warn!("TUSK_DRIFT_MODE=REPLAY is not implemented by drift-sdk; recording is disabled");
                Mode::Disabled
            }
            _ => Mode::Disabled,
        }
    }
}

/// Where exported spans go.
#[derive(Debug, Clone)]
pub enum SinkChoice {
    /// JSONL trace files in the Tusk layout (§8), the default.
    Files,
    /// `ExportSpansRequest` over HTTP (§9).
    Api,
    /// Keep spans in memory for tests; replaces any other sink.
    Memory(crate::export::InMemorySpans),
}

/// Everything the SDK reads once it runs: the builder resolved against the environment and the config file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Record or pass through.
    pub mode: Mode,
    /// The `environment` written on every span.
    pub environment: String,
    /// The observable service id (`service.id`).
    pub service_id: Option<String>,
    /// The API key (`TUSK_API_KEY`).
    pub api_key: Option<String>,
    /// The API base URL (`tusk_api.url`).
    pub api_url: String,
    /// The trace directory, absolute.
    pub traces_dir: PathBuf,
    /// Where spans go.
    pub sink: SinkChoice,
    /// The base sampling rate.
    pub sampling_rate: f64,
    /// Fixed or adaptive sampling.
    pub sampling_mode: SamplingMode,
    /// The adaptive floor rate, capped at the base rate.
    pub min_sampling_rate: f64,
    /// Whether adaptive state changes are logged.
    pub log_sampling_transitions: bool,
    /// Transform rules, validated.
    pub transforms: Vec<TransformRule>,
    /// Record an `ENV_VARS_SNAPSHOT` span at init.
    pub record_env_vars: bool,
    /// Queue capacity in records.
    pub queue_capacity: usize,
    /// Batch size in records.
    pub batch_size: usize,
    /// Longest wait between exports.
    pub scheduled_delay: Duration,
    /// Timeout of `flush()` and of the final join.
    pub flush_timeout: Duration,
    /// Open trace files remembered by the file sink.
    pub trace_file_lru: usize,
    /// The export thread's nice value (Linux).
    pub export_thread_nice: i32,
    /// The environment the SDK was started with (for the env-var snapshot).
    pub(crate) env: HashMap<String, String>,
}

/// What the host set in code. Every field is optional; `None` falls through to the environment, then the file.
#[derive(Debug, Default)]
pub(crate) struct BuilderValues {
    pub mode: Option<Mode>,
    pub environment: Option<String>,
    pub service_id: Option<String>,
    pub api_key: Option<String>,
    pub api_url: Option<String>,
    pub traces_dir: Option<PathBuf>,
    pub export_spans: Option<bool>,
    pub memory_sink: Option<crate::export::InMemorySpans>,
    pub sampling_rate: Option<f64>,
    pub sampling_mode: Option<SamplingMode>,
    pub min_sampling_rate: Option<f64>,
    pub log_sampling_transitions: Option<bool>,
    pub transforms: Option<Vec<TransformRule>>,
    pub config_file: Option<PathBuf>,
    pub env: Option<HashMap<String, String>>,
    pub current_dir: Option<PathBuf>,
    pub queue_capacity: Option<usize>,
    pub batch_size: Option<usize>,
    pub scheduled_delay: Option<Duration>,
    pub flush_timeout: Option<Duration>,
    pub trace_file_lru: Option<usize>,
    pub export_thread_nice: Option<i32>,
}

/// Resolves builder values against the environment and `.tusk/config.yaml`.
pub(crate) fn resolve(b: BuilderValues) -> Result<Settings> {
    let env: HashMap<String, String> = match b.env.clone() {
        Some(env) => env,
        None => std::env::vars_os()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
            .collect(),
    };
    let cwd = match &b.current_dir {
        Some(d) => d.clone(),
        None => {
            std::env::current_dir().map_err(|e| Error::Config(format!("cannot read the current directory: {e}")))?
        }
    };
    let file = match &b.config_file {
        Some(path) => load_file(path),
        None => find_config_file(&cwd).and_then(|p| load_file(&p)),
    };
    resolve_with(b, env, cwd, file.unwrap_or(serde_yaml::Value::Null))
}

fn resolve_with(
    b: BuilderValues,
    env: HashMap<String, String>,
    cwd: PathBuf,
    file: serde_yaml::Value,
) -> Result<Settings> {
    let mode = b.mode.unwrap_or_else(|| {
        env.get("TUSK_DRIFT_MODE")
            .map_or(Mode::Disabled, |v| Mode::from_env_value(v))
    });
    let environment = b
        .environment
        .or_else(|| env.get("ENV").filter(|v| !v.is_empty()).cloned())
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_owned());
    let api_key = b
        .api_key
        .or_else(|| env.get("TUSK_API_KEY").filter(|v| !v.is_empty()).cloned());
    let service_id = b.service_id.or_else(|| yaml_string(&file, &["service", "id"]));
    let api_url = b
        .api_url
        .or_else(|| yaml_string(&file, &["tusk_api", "url"]))
        .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    let traces_dir = b
        .traces_dir
        .or_else(|| yaml_string(&file, &["traces", "dir"]).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TRACES_DIR));
    let traces_dir = if traces_dir.is_absolute() {
        traces_dir
    } else {
        cwd.join(traces_dir)
    };

    let export_spans = b
        .export_spans
        .or_else(|| yaml_bool(&file, &["recording", "export_spans"]))
        .unwrap_or(false);
    let sink = if let Some(mem) = b.memory_sink {
        SinkChoice::Memory(mem)
    } else if export_spans {
        if api_key.is_none() {
            return Err(Error::Config(
                "recording.export_spans is true but there is no API key: set TUSK_API_KEY or call .api_key(..)".into(),
            ));
        }
        if service_id.is_none() {
            return Err(Error::Config(
                "recording.export_spans is true but there is no service id: set service.id in .tusk/config.yaml \
                 or call .service_id(..)"
                    .into(),
            ));
        }
        SinkChoice::Api
    } else {
        SinkChoice::Files
    };

    // Sampling (§11.4).
    let mut candidates: Vec<(&str, Option<String>)> = Vec::new();
    candidates.push(("the builder's sampling_rate", b.sampling_rate.map(|r| format!("{r}"))));
    candidates.push((
        "TUSK_RECORDING_SAMPLING_RATE",
        env.get("TUSK_RECORDING_SAMPLING_RATE").cloned(),
    ));
    candidates.push(("TUSK_SAMPLING_RATE", env.get("TUSK_SAMPLING_RATE").cloned()));
    candidates.push((
        "recording.sampling.base_rate",
        yaml_scalar(&file, &["recording", "sampling", "base_rate"]),
    ));
    candidates.push((
        "recording.sampling_rate",
        yaml_scalar(&file, &["recording", "sampling_rate"]),
    ));
    let sampling_rate = first_valid_rate(&candidates);
    let sampling_mode =
        b.sampling_mode
            .unwrap_or_else(|| match yaml_string(&file, &["recording", "sampling", "mode"]) {
                None => SamplingMode::Fixed,
                Some(m) if m.eq_ignore_ascii_case("fixed") => SamplingMode::Fixed,
                Some(m) if m.eq_ignore_ascii_case("adaptive") => SamplingMode::Adaptive,
                Some(m) => {
                    tracing::warn!(mode = %m, "recording.sampling.mode must be `fixed` or `adaptive`; using fixed");
                    SamplingMode::Fixed
                }
            });
    let min_sampling_rate = b
        .min_sampling_rate
        .or_else(|| {
            yaml_scalar(&file, &["recording", "sampling", "min_rate"]).and_then(|s| {
                let r = sampling::parse_rate(&s);
                if r.is_none() {
                    tracing::warn!(value = %s, "recording.sampling.min_rate is not a rate in [0, 1]; using 0.001");
                }
                r
            })
        })
        .unwrap_or(DEFAULT_MIN_SAMPLING_RATE)
        .min(sampling_rate);
    let log_sampling_transitions = b
        .log_sampling_transitions
        .or_else(|| {
            let v = env.get("TUSK_RECORDING_SAMPLING_LOG_TRANSITIONS")?;
            let parsed = parse_bool(v);
            if parsed.is_none() {
                tracing::warn!(value = %v, "TUSK_RECORDING_SAMPLING_LOG_TRANSITIONS is not a boolean; ignored");
            }
            parsed
        })
        .or_else(|| yaml_bool(&file, &["recording", "sampling", "log_transitions"]))
        .unwrap_or(true);

    let transforms = match b.transforms {
        Some(rules) => {
            for rule in &rules {
                rule.validate()?;
            }
            rules
        }
        None => transform::rules_from_yaml(&file)?,
    };
    let record_env_vars = yaml_bool(&file, &["recording", "enable_env_var_recording"]).unwrap_or(false);

    let queue_capacity = b.queue_capacity.unwrap_or(DEFAULT_QUEUE_CAPACITY);
    let batch_size = b.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
    if queue_capacity == 0 {
        return Err(Error::Config("queue_capacity must be at least 1".into()));
    }
    if batch_size == 0 || batch_size > queue_capacity {
        return Err(Error::Config(format!(
            "batch_size must be between 1 and queue_capacity ({queue_capacity}), not {batch_size}"
        )));
    }
    let trace_file_lru = b.trace_file_lru.unwrap_or(DEFAULT_TRACE_FILE_LRU);
    if trace_file_lru == 0 {
        return Err(Error::Config("trace_file_lru must be at least 1".into()));
    }
    Ok(Settings {
        mode,
        environment,
        service_id,
        api_key,
        api_url,
        traces_dir,
        sink,
        sampling_rate,
        sampling_mode,
        min_sampling_rate,
        log_sampling_transitions,
        transforms,
        record_env_vars,
        queue_capacity,
        batch_size,
        scheduled_delay: b.scheduled_delay.unwrap_or(DEFAULT_SCHEDULED_DELAY),
        flush_timeout: b.flush_timeout.unwrap_or(DEFAULT_FLUSH_TIMEOUT),
        trace_file_lru,
        export_thread_nice: b
            .export_thread_nice
            .unwrap_or(DEFAULT_EXPORT_THREAD_NICE)
            .clamp(-20, 19),
        env,
    })
}

/// The first candidate that parses as a rate in [0, 1]; warns about each one skipped (§11.4, R5, R6).
fn first_valid_rate(candidates: &[(&str, Option<String>)]) -> f64 {
    for (source, value) in candidates {
        let Some(value) = value else { continue };
        match sampling::parse_rate(value) {
            Some(rate) => return rate,
            None => tracing::warn!(%source, %value, "not a sampling rate in [0, 1]; trying the next source"),
        }
    }
    DEFAULT_SAMPLING_RATE
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Walks up from `start` (included) to the first directory holding `.tusk/config.yaml`.
fn find_config_file(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(".tusk").join("config.yaml"))
        .find(|p| p.is_file())
}

/// Reads and parses the config file. A file that cannot be read or parsed, or is not a mapping, is ignored with an
/// error log (§14.1).
fn load_file(path: &Path) -> Option<serde_yaml::Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the drift config file; ignoring it");
            return None;
        }
    };
    match serde_yaml::from_str::<serde_yaml::Value>(&text) {
        Ok(v @ serde_yaml::Value::Mapping(_)) => Some(v),
        Ok(_) => {
            tracing::error!(path = %path.display(), "the drift config file is not a mapping; ignoring it");
            None
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot parse the drift config file; ignoring it");
            None
        }
    }
}

fn yaml_get<'a>(v: &'a serde_yaml::Value, path: &[&str]) -> Option<&'a serde_yaml::Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_mapping()?.get(*key)?;
    }
    if cur.is_null() { None } else { Some(cur) }
}

fn yaml_string(v: &serde_yaml::Value, path: &[&str]) -> Option<String> {
    let value = yaml_get(v, path)?;
    match value.as_str() {
        Some(s) => Some(s.to_owned()),
        None => {
            tracing::warn!(key = %path.join("."), "expected a string; ignoring the key");
            None
        }
    }
}

fn yaml_bool(v: &serde_yaml::Value, path: &[&str]) -> Option<bool> {
    let value = yaml_get(v, path)?;
    match value.as_bool() {
        Some(b) => Some(b),
        None => {
            tracing::warn!(key = %path.join("."), "expected a boolean; ignoring the key");
            None
        }
    }
}

/// A scalar as text, so numbers and strings go through the same rate parser.
fn yaml_scalar(v: &serde_yaml::Value, path: &[&str]) -> Option<String> {
    match yaml_get(v, path)? {
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => {
            tracing::warn!(key = %path.join("."), "expected a number; ignoring the key");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn settings(b: BuilderValues, e: &[(&str, &str)], yaml: &str) -> Result<Settings> {
        let file = if yaml.is_empty() {
            serde_yaml::Value::Null
        } else {
            serde_yaml::from_str(yaml).unwrap()
        };
        resolve_with(b, env(e), PathBuf::from("/srv/app"), file)
    }

    #[test]
    fn mode_defaults_to_disabled_and_reads_the_environment() {
        assert_eq!(
            settings(BuilderValues::default(), &[], "").unwrap().mode,
            Mode::Disabled
        );
        assert_eq!(
            settings(BuilderValues::default(), &[("TUSK_DRIFT_MODE", "record")], "")
                .unwrap()
                .mode,
            Mode::Record
        );
        assert_eq!(
            settings(BuilderValues::default(), &[("TUSK_DRIFT_MODE", "REPLAY")], "")
                .unwrap()
                .mode,
            Mode::Disabled
        );
        let b = BuilderValues {
            mode: Some(Mode::Record),
            ..Default::default()
        };
        assert_eq!(
            settings(b, &[("TUSK_DRIFT_MODE", "DISABLED")], "").unwrap().mode,
            Mode::Record
        );
    }

    #[test]
    fn sampling_rate_precedence_skips_invalid_values() {
        let s = settings(
            BuilderValues::default(),
            &[("TUSK_RECORDING_SAMPLING_RATE", "1.5"), ("TUSK_SAMPLING_RATE", "0.25")],
            "recording:\n  sampling_rate: 0.75\n",
        )
        .unwrap();
        assert_eq!(s.sampling_rate, 0.25);
        let s = settings(
            BuilderValues::default(),
            &[("TUSK_SAMPLING_RATE", "abc")],
            "recording:\n  sampling_rate: 1\n",
        )
        .unwrap();
        assert_eq!(s.sampling_rate, 1.0);
        let s = settings(
            BuilderValues::default(),
            &[],
            "recording:\n  sampling_rate: 0.75\n  sampling:\n    base_rate: 0.5\n    min_rate: 0.9\n",
        )
        .unwrap();
        assert_eq!(s.sampling_rate, 0.5);
        assert_eq!(s.min_sampling_rate, 0.5, "the floor is capped at the base rate");
        let b = BuilderValues {
            sampling_rate: Some(0.1),
            ..Default::default()
        };
        assert_eq!(
            settings(b, &[("TUSK_SAMPLING_RATE", "0.9")], "").unwrap().sampling_rate,
            0.1
        );
        assert_eq!(settings(BuilderValues::default(), &[], "").unwrap().sampling_rate, 1.0);
    }

    #[test]
    fn file_keys_and_relative_traces_dir() {
        let s = settings(
            BuilderValues::default(),
            &[("ENV", "staging")],
            "service:\n  id: svc-1\ntraces:\n  dir: out/traces\nrecording:\n  sampling:\n    mode: adaptive\n",
        )
        .unwrap();
        assert_eq!(s.service_id.as_deref(), Some("svc-1"));
        assert_eq!(s.traces_dir, PathBuf::from("/srv/app/out/traces"));
        assert_eq!(s.environment, "staging");
        assert_eq!(s.sampling_mode, SamplingMode::Adaptive);
        assert!(matches!(s.sink, SinkChoice::Files));
    }

    #[test]
    fn api_export_needs_a_key_and_a_service_id() {
        let yaml = "recording:\n  export_spans: true\nservice:\n  id: svc\n";
        let err = settings(BuilderValues::default(), &[], yaml).unwrap_err();
        assert!(err.to_string().contains("TUSK_API_KEY"), "{err}");
        let err = settings(
            BuilderValues::default(),
            &[("TUSK_API_KEY", "k")],
            "recording:\n  export_spans: true\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("service.id"), "{err}");
        let s = settings(BuilderValues::default(), &[("TUSK_API_KEY", "k")], yaml).unwrap();
        assert!(matches!(s.sink, SinkChoice::Api));
    }

    #[test]
    fn wrongly_typed_keys_are_ignored() {
        let s = settings(
            BuilderValues::default(),
            &[],
            "traces:\n  dir: [1, 2]\nrecording:\n  export_spans: maybe\n",
        )
        .unwrap();
        assert_eq!(s.traces_dir, PathBuf::from("/srv/app/.tusk/traces"));
        assert!(matches!(s.sink, SinkChoice::Files));
    }

    #[test]
    fn unknown_transform_action_is_an_error_from_init() {
        let yaml = "transforms:\n  http:\n    - matcher: { jsonPath: \"$.a\" }\n      action: { type: hash }\n";
        let err = settings(BuilderValues::default(), &[], yaml).unwrap_err();
        assert!(matches!(err, Error::Transform(_)), "{err}");
    }

    #[test]
    fn batch_larger_than_queue_is_rejected() {
        let b = BuilderValues {
            queue_capacity: Some(10),
            batch_size: Some(20),
            ..Default::default()
        };
        let err = settings(b, &[], "").unwrap_err();
        assert!(err.to_string().contains("batch_size"), "{err}");
    }
}
