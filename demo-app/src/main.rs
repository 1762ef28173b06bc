//! `demo-app`: serves the seed's endpoints behind drift-sdk until SIGINT or SIGTERM.
//!
//! Exit codes: 0 after a clean shutdown, 1 when the app could not start or failed while serving, 2 for bad flags.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use demo_app::cli::Flags;
use demo_app::profiler::{Profiler, ProfilerOptions, RunFacts};
use demo_app::{DemoApp, ServeOptions};
use drift_sdk::Drift;
use serde_json::json;

#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// A failure and the exit code it gives.
enum Failure {
    /// A flag's value cannot be used: exit 2, like clap's own errors.
    Usage(anyhow::Error),
    /// Start-up or serving failed: exit 1.
    Run(anyhow::Error),
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    match run(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("demo-app: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("demo-app: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(flags: Flags) -> Result<(), Failure> {
    let drift = sdk_from_flags(&flags).map_err(Failure::Usage)?;
    if flags.pprof_endpoint && cfg!(not(feature = "pprof")) {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--pprof-endpoint needs a build with the `pprof` feature (cargo run -p demo-app --features pprof)"
        )));
    }
    let profiler = Profiler::start(&ProfilerOptions {
        dir: flags.profile_dir.clone(),
        hz: flags.hz,
        whole_run: !flags.pprof_endpoint,
        log_level: flags.log_level,
    })
    .map_err(Failure::Run)?;
    // A configuration the SDK refuses is the user's to fix (exit 2); a directory or thread it cannot create is not.
    let drift = drift.init().map_err(|e| {
        let usage = matches!(e, drift_sdk::Error::Config(_) | drift_sdk::Error::Transform(_));
        let e = anyhow::Error::new(e).context("starting the Drift SDK");
        if usage { Failure::Usage(e) } else { Failure::Run(e) }
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
        .map_err(Failure::Run)?;
    let options = ServeOptions {
        drain_timeout: flags.drain_timeout,
        pprof_endpoint_hz: flags.pprof_endpoint.then_some(flags.hz),
    };
    let served = runtime.block_on(serve(&flags, &drift, &options)).map_err(Failure::Run);
    // The SDK flushes on this thread, outside the runtime, before the profiler stops: its export work is part of
    // what is profiled.
    drift.shutdown();
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let served = served?;
    let facts = RunFacts {
        requests: served.requests,
        sdk: drift.stats(),
        drained: served.drained,
        calibration: served.calibration,
    };
    let files = profiler.finish(&facts).map_err(Failure::Run)?;
    print_line(&json!({
        "event": "stopped",
        "requests": facts.requests,
        "drained": facts.drained,
        "sdk": demo_app::profiler::sdk_json(&facts.sdk),
        "files": files,
    }));
    Ok(())
}

/// The SDK's builder from the flags; the environment and `.tusk/config.yaml` fill in the rest at `init`.
fn sdk_from_flags(flags: &Flags) -> anyhow::Result<drift_sdk::DriftBuilder> {
    let mut builder = Drift::builder();
    if let Some(mode) = flags.mode {
        builder = builder.mode(mode.into());
    }
    if let Some(rate) = flags.sampling_rate {
        builder = builder.sampling_rate(rate);
    }
    if let Some(dir) = &flags.traces_dir {
        builder = builder.traces_dir(dir);
    }
    if let Some(records) = flags.batch_size {
        builder = builder.batch_size(records as usize);
    }
    if let Some(nice) = flags.export_thread_nice {
        builder = builder.export_thread_nice(nice);
    }
    if flags.discard_spans {
        builder = builder.exporter(Box::new(demo_app::discard::DiscardLines::default()));
    }
    if let Some(path) = &flags.transforms {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading --transforms {}", path.display()))?;
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&text).with_context(|| format!("parsing --transforms {} as YAML", path.display()))?;
        let rules = drift_sdk::transform::rules_from_yaml(&doc)
            .with_context(|| format!("reading the rules of --transforms {}", path.display()))?;
        if rules.is_empty() {
            anyhow::bail!(
                "--transforms {} has no rules: expected a `transforms.http` list, as in .tusk/config.yaml",
                path.display()
            );
        }
        builder = builder.transforms(rules);
    }
    Ok(builder)
}

async fn serve(flags: &Flags, drift: &Drift, options: &ServeOptions) -> anyhow::Result<demo_app::Served> {
    let terminated = termination_signal().context("listening for SIGINT and SIGTERM")?;
    let app = DemoApp::bind(flags.listen, drift, options).await?;
    let addr = app.local_addr().context("reading the bound address")?;
    let upstream = app.upstream_addr().context("reading the upstream's address")?;
    drift.mark_app_ready();
    print_line(&json!({
        "event": "listening",
        "addr": addr.to_string(),
        "url": format!("http://{addr}"),
        "upstream": format!("http://{upstream}"),
        "pid": std::process::id(),
        "recording": drift.is_recording(),
        "profiler": demo_app::profiler::BUILT_WITH,
        "traces_dir": drift.traces_dir(),
    }));
    app.serve(terminated).await
}

/// Completes on the first SIGINT or SIGTERM. The handlers are installed before it returns, so a signal that
/// arrives before the future is polled is not lost. A second signal while the app drains and flushes exits at once
/// with code 130, without the profiler's files.
fn termination_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            eprintln!("demo-app: second signal: exiting now, without waiting for requests or writing profiler files");
            std::process::exit(130);
        });
    })
}

/// One JSON line on stdout, flushed at once (the caller may be a pipe). A closed stdout is not an error.
fn print_line(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}
