//! `cargo xtask profile cpu|mem|timeline`: collect → parse → render.
//!
//! 1. build the demo app with the mode's feature and the workload (`collect::build`);
//! 2. start the app, run the workload, stop the app with SIGINT (`collect::App`);
//! 3. parse the profiler's files (`parse`) and print the tables (`render::tables`);
//! 4. write `summary.json`, `report.html` and, for cpu, `flamegraph.svg` into the run's directory.
//!
//! `cargo xtask profile attach` replaces steps 1 and 2 with one window fetched from a running app (`attach.rs`),
//! then reports it as a cpu run.
//!
//! A step that fails says which step and why, keeps what the run has written, and exits 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::Failure;
use crate::attach::Attach;
use crate::collect::{self, App};
use crate::flags::{Mode, ProfileArgs, ProfileMode};
use crate::parse::calibration::{Calibration, ClockCalibration, ClockedTime};
use crate::parse::chrome::Timeline;
use crate::parse::dhat::HeapProfile;
use crate::parse::folded::{CpuHeadline, CpuOptions, CpuProfile, CpuRun, CpuScale, CumulativeView, EXPORTER_THREAD};
use crate::parse::threads::{THREAD_SHARE_TOLERANCE_POINTS, ThreadClock, ThreadTable};
use crate::render::html::Section;
use crate::render::tables::{self, MemRanking};
use crate::summary::{
    CpuSummary, Durations, MemSummary, Settings, Summary, TimelineSummary, WorkloadFacts, new_run, read_json, read_text,
};

/// Below this many samples a cpu profile is too coarse to rank functions: say so.
pub const MIN_SAMPLES: u64 = 1_000;

/// A profile run, with every default resolved.
#[derive(Debug)]
pub struct ProfileRequest {
    pub mode: Mode,
    /// `profile attach`: the running app to fetch a window from, instead of building and driving the demo app.
    pub attach: Option<Attach>,
    pub settings: Settings,
    pub top: usize,
    pub all_functions: bool,
    pub raw_leaves: bool,
    pub check_calibration: bool,
    pub name: String,
    pub dir: PathBuf,
    pub started: String,
}

impl ProfileArgs {
    pub fn run(self, sh: &Shell, root: &Path) -> Result<(), Failure> {
        let request = self.into_request(root).map_err(Failure::Usage)?;
        request.run(sh, root)
    }

    /// Resolves defaults and checks what can be checked before any work.
    fn into_request(self, root: &Path) -> anyhow::Result<ProfileRequest> {
        if self.mode == ProfileMode::Attach {
            return self.into_attach_request(root);
        }
        if self.url.is_some() {
            bail!("--url is for `cargo xtask profile attach --url http://127.0.0.1:PORT`");
        }
        let mode = self.mode.run_mode();
        let (duration, iterations) = match (self.duration, self.iterations, mode) {
            (Some(d), _, _) => (Some(d), None),
            (None, Some(n), _) => (None, Some(n)),
            (None, None, Mode::Cpu) => (Some(Duration::from_secs(10)), None),
            (None, None, Mode::Mem) => (None, Some(500)),
            (None, None, Mode::Timeline) => (None, Some(1000)),
        };
        if self.check_calibration && mode != Mode::Cpu {
            bail!(
                "--check-calibration is a cpu check: use `cargo xtask profile cpu --mix calibrate=1 --check-calibration`"
            );
        }
        if self.kernel && mode != Mode::Cpu {
            bail!("--kernel records perf beside the CPU sampler: use it with `cargo xtask profile cpu`");
        }
        let concurrency = self.concurrency.unwrap_or(if mode == Mode::Cpu { 4 } else { 1 });
        let transforms = match &self.transforms {
            Some(path) => {
                let path = std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
                if !path.is_file() {
                    bail!("--transforms {}: no such file", path.display());
                }
                Some(path.display().to_string())
            }
            None => None,
        };
        let settings = Settings {
            duration_s: duration.map(|d| d.as_secs_f64()),
            iterations,
            concurrency,
            rate: self.rate,
            discard_spans: self.discard_spans,
            mix: absolute_mix(&self.mix)?,
            sampling_rate: Some(self.sampling_rate),
            transforms,
            hz: (mode == Mode::Cpu).then_some(self.hz),
            build_profile: "profiling".to_owned(),
            feature: mode.feature().to_owned(),
            kernel: self.kernel,
            attached: None,
        };
        self.request(root, mode.name(), mode, settings, None)
    }
}

impl ProfileArgs {
    /// The request for a run of `mode` with `settings`, named `label-YYYYmmdd-HHMMSS` or `--save`, with the report
    /// options of these flags. Called last, once everything else is checked, so a refused run leaves no name taken.
    pub(crate) fn request(
        self,
        root: &Path,
        label: &str,
        mode: Mode,
        settings: Settings,
        attach: Option<Attach>,
    ) -> anyhow::Result<ProfileRequest> {
        let results = root.join("results");
        let (name, started) = new_run(&results, self.save, label)?;
        Ok(ProfileRequest {
            mode,
            attach,
            settings,
            top: self.top,
            all_functions: self.all_functions,
            raw_leaves: self.raw_leaves,
            check_calibration: self.check_calibration,
            dir: results.join(&name),
            name,
            started,
        })
    }
}

impl ProfileRequest {
    fn run(&self, sh: &Shell, root: &Path) -> Result<(), Failure> {
        if let Some(attach) = &self.attach {
            return self.run_attach(sh, root, attach);
        }
        if self.settings.kernel {
            crate::perf::check_available(sh).map_err(Failure::Usage)?;
        }
        let started = Instant::now();
        step(
            1,
            "build",
            &format!(
                "building demo-app ({}) and the workload, profile `profiling`",
                self.settings.feature
            ),
        );
        let binaries = collect::build(sh, root, self.mode).context("step 1/4 (build) failed")?;
        let build_s = started.elapsed().as_secs_f64();

        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let run_started = Instant::now();
        step(
            2,
            "start",
            &format!("starting demo-app; files go to {}", self.relative(root)),
        );
        let mut app = App::start(sh, &binaries.demo_app, &self.app_args(), &self.dir.join("demo-app.log"))
            .context("step 2/4 (start the app) failed")?;

        let perf = if self.settings.kernel {
            let hz = self.settings.hz.unwrap_or(99);
            let recording = crate::perf::Recording::start(
                sh,
                app.pid(),
                hz,
                &self.dir.join("perf.data"),
                &self.dir.join("perf.log"),
            )
            .context("step 2/4 (start perf record) failed")?;
            Some(recording)
        } else {
            None
        };
        step(
            3,
            "workload",
            &format!("{} against {}", self.workload_description(), app.url),
        );
        let workload_json = self.dir.join("workload.json");
        let workload = collect::run_workload(
            sh,
            &binaries.workload,
            &app.url,
            &self.workload_args(),
            &workload_json,
            &self.dir.join("workload.txt"),
        );
        let alive = app.check_alive();
        let (status, workload) = workload.context("step 3/4 (workload) failed")?;
        alive.context("step 3/4 (workload) failed")?;

        step(4, "stop", "stopping demo-app (SIGINT) and waiting for its files");
        let stopped = app.stop(sh).context("step 4/4 (stop the app) failed")?;
        if let Some(perf) = perf {
            eprintln!(
                "      perf script: collapsing perf.data (kernel frames end in {})",
                crate::perf::KERNEL_SUFFIX
            );
            perf.finish(sh).context("step 4/4 (stop perf record) failed")?;
            // The sampler's window, so that both profiles cover the same seconds (perf also sees the app's
            // start-up and its report-writing after the sampler stops).
            let run: Value = read_json(&self.dir.join("run.json")).context("reading the app's run.json")?;
            let window = run["profiler_output"]["pprof"]["monotonic_window_s"]
                .as_array()
                .and_then(|w| Some((w.first()?.as_f64()?, w.get(1)?.as_f64()?)));
            if window.is_none() {
                eprintln!(
                    "      warning: run.json gives no sampler window; perf's samples of the whole process life are \
                     compared"
                );
            }
            let folded = crate::perf::folded(sh, &self.dir.join("perf.data"), window)?;
            let path = self.dir.join("perf.folded");
            std::fs::write(&path, folded).with_context(|| format!("writing {}", path.display()))?;
        }
        let run_s = run_started.elapsed().as_secs_f64();
        if !status.success() {
            return Err(Failure::Run(anyhow::anyhow!(
                "the workload failed ({status}): {} of {} requests failed; the run's files are kept in {}",
                workload["failed"],
                workload["requests"],
                self.relative(root)
            )));
        }

        let report_started = Instant::now();
        let mut summary = Summary {
            version: crate::summary::SUMMARY_VERSION,
            name: self.name.clone(),
            mode: self.mode,
            started: self.started.clone(),
            settings: self.settings.clone(),
            git_commit: git_commit(sh),
            rustc: cmd!(sh, "rustc --version").quiet().read().unwrap_or_default(),
            requests: 0,
            workload: workload_facts(&workload),
            durations: Durations {
                build_s,
                run_s,
                report_s: 0.0,
            },
            sdk: stopped["sdk"].clone(),
            cpu: None,
            mem: None,
            timeline: None,
        };
        let run: Value = read_json(&self.dir.join("run.json")).context("reading the app's run.json")?;
        summary.requests = run["requests"].as_u64().unwrap_or(0);
        self.report(root, summary, &run, report_started)
    }

    /// Parses the run's files, writes `summary.json` and `report.html`, and prints the tables and the files.
    pub(crate) fn report(
        &self,
        root: &Path,
        mut summary: Summary,
        run: &Value,
        report_started: Instant,
    ) -> Result<(), Failure> {
        let report = match self.mode {
            Mode::Cpu => self.report_cpu(&mut summary, run),
            Mode::Mem => self.report_mem(&mut summary),
            Mode::Timeline => self.report_timeline(&mut summary),
        }
        .context("reading the profile")?;
        summary.durations.report_s = report_started.elapsed().as_secs_f64();
        let summary_path = summary.write(&self.dir)?;
        let html_path = self.dir.join("report.html");
        let flamegraph = std::fs::read_to_string(self.dir.join("flamegraph.svg")).ok();
        let html = crate::render::html::page(
            &format!("cargo xtask profile {} — {}", self.mode.name(), self.name),
            &self.facts(&summary),
            &report.sections,
            flamegraph.as_deref(),
        );
        std::fs::write(&html_path, html).with_context(|| format!("writing {}", html_path.display()))?;

        for section in &report.sections {
            println!("{}\n{}\n", section.heading, section.text);
        }
        for hint in &report.hints {
            println!("{hint}");
        }
        println!("\nfiles in {}:", self.relative(root));
        for file in ["summary.json", "report.html"]
            .iter()
            .map(PathBuf::from)
            .chain(report.files)
            .filter(|f| self.dir.join(f).exists())
        {
            println!("  {}", file.display());
        }
        let _ = summary_path;
        match report.failed_check {
            Some(failure) => Err(Failure::Run(anyhow::anyhow!(failure))),
            None => Ok(()),
        }
    }

    fn app_args(&self) -> Vec<String> {
        let mut args = vec![
            "--mode".to_owned(),
            "record".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--sampling-rate".to_owned(),
            self.settings.sampling_rate.unwrap_or(1.0).to_string(),
            "--profile-dir".to_owned(),
            self.dir.display().to_string(),
        ];
        if self.settings.discard_spans {
            args.push("--discard-spans".to_owned());
        } else {
            args.extend(["--traces-dir".to_owned(), self.dir.join("traces").display().to_string()]);
        }
        if let Some(hz) = self.settings.hz {
            args.extend(["--hz".to_owned(), hz.to_string()]);
        }
        if let Some(transforms) = &self.settings.transforms {
            args.extend(["--transforms".to_owned(), transforms.clone()]);
        }
        args
    }

    fn workload_args(&self) -> Vec<String> {
        let mut args = vec![
            "--concurrency".to_owned(),
            self.settings.concurrency.to_string(),
            "--mix".to_owned(),
            self.settings.mix.clone(),
        ];
        match (self.settings.duration_s, self.settings.iterations) {
            (Some(seconds), _) => args.extend(["--duration".to_owned(), format!("{}ms", (seconds * 1000.0).round())]),
            (None, Some(n)) => args.extend(["--iterations".to_owned(), n.to_string()]),
            (None, None) => {}
        }
        if let Some(rate) = self.settings.rate {
            args.extend(["--rate".to_owned(), rate.to_string()]);
        }
        args
    }

    fn workload_description(&self) -> String {
        let size = match (self.settings.duration_s, self.settings.iterations) {
            (Some(s), _) => format!("for {s} s"),
            (None, Some(n)) => format!("{n} requests"),
            (None, None) => String::new(),
        };
        let pace = self
            .settings
            .rate
            .map_or_else(String::new, |r| format!(", paced at {r} req/s"));
        format!(
            "{} mix, {} connection(s){pace}, {size}",
            self.settings.mix, self.settings.concurrency
        )
    }

    fn relative(&self, root: &Path) -> String {
        self.dir.strip_prefix(root).unwrap_or(&self.dir).display().to_string()
    }

    /// A file of the run as the hints name it: relative to the workspace root, where `cargo xtask` runs (the run's
    /// directory is always `results/<name>` there), so that a printed command works as it is and names no machine.
    fn shown(&self, file: &str) -> String {
        format!("results/{}/{file}", self.name)
    }

    /// The settings and facts at the top of `report.html`.
    fn facts(&self, summary: &Summary) -> Vec<(String, String)> {
        let s = &summary.settings;
        if let Some(url) = &s.attached {
            return vec![
                ("started".into(), summary.started.clone()),
                (
                    "attached to".into(),
                    format!("{url}, a {} s window", s.duration_s.unwrap_or(0.0)),
                ),
                (
                    "requests served".into(),
                    format!(
                        "{} in the window ({:.0} req/s, the app's own count)",
                        summary.requests, summary.workload.req_per_s
                    ),
                ),
                (
                    "git commit".into(),
                    format!("{} (this checkout; the app may differ)", summary.git_commit),
                ),
            ];
        }
        let size = match (s.duration_s, s.iterations) {
            (Some(d), _) => format!("{d} s"),
            (None, Some(n)) => format!("{n} requests"),
            (None, None) => "-".into(),
        };
        vec![
            ("started".into(), summary.started.clone()),
            ("git commit".into(), summary.git_commit.clone()),
            ("rustc".into(), summary.rustc.clone()),
            (
                "mix".into(),
                format!("{} ({size}, {} connection(s))", s.mix, s.concurrency),
            ),
            (
                "sampling rate".into(),
                s.sampling_rate.map_or_else(|| "-".into(), |r| r.to_string()),
            ),
            (
                "transforms".into(),
                s.transforms.clone().unwrap_or_else(|| "none".into()),
            ),
            (
                "build".into(),
                format!("profile `{}`, feature `{}`", s.build_profile, s.feature),
            ),
            ("requests served".into(), summary.requests.to_string()),
            (
                "workload".into(),
                format!(
                    "{:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, {} failed",
                    summary.workload.req_per_s,
                    summary.workload.p50_us,
                    summary.workload.p99_us,
                    summary.workload.failed
                ),
            ),
        ]
    }
}

/// What a mode's report step produced.
#[derive(Debug)]
pub struct Report {
    pub sections: Vec<Section>,
    pub hints: Vec<String>,
    /// Files of the run worth pointing at, relative to its directory.
    pub files: Vec<PathBuf>,
    /// A check the run was asked to make and that failed: reported after everything is written, exit 1.
    pub failed_check: Option<String>,
}

impl ProfileRequest {
    /// cpu: the folded stacks → the headline, the cumulative and self tables, and the flame graph.
    fn report_cpu(&self, summary: &mut Summary, run: &Value) -> anyhow::Result<Report> {
        let pprof: Value = read_json(&self.dir.join("pprof.json"))?;
        let folded_path = self.dir.join("cpu.folded");
        let folded = read_text(&folded_path)?;
        let options = CpuOptions {
            fold_library_leaves: !self.raw_leaves,
        };
        let profile =
            CpuProfile::from_folded(&folded, options).with_context(|| format!("parsing {}", folded_path.display()))?;
        if profile.total_samples == 0 {
            bail!(
                "the profile has no samples: the app used too little CPU; run longer (--duration) or with more \
                 --concurrency"
            );
        }
        let cpu_run = CpuRun {
            cpu_seconds: pprof["cpu_seconds"].as_f64().context("pprof.json has no cpu_seconds")?,
            hz: pprof["frequency"].as_u64().context("pprof.json has no frequency")? as u32,
            requests: pprof["requests"].as_u64().context("pprof.json has no requests")?,
        };
        let headline = CpuHeadline::new(&profile, &cpu_run);
        let clocks: Option<Vec<ThreadClock>> = serde_json::from_value(pprof["threads"].clone())
            .context("pprof.json: `threads` is not a list of {tid, name, cpu_seconds, unarmed_seconds}")?;
        let threads = clocks.map(|clocks| ThreadTable::new(&clocks, &profile, cpu_run.hz));
        let scale = CpuScale::new(cpu_run.cpu_seconds, profile.total_samples, cpu_run.requests);
        let view = if self.all_functions {
            CumulativeView::All
        } else {
            CumulativeView::Focus
        };

        let s = &self.settings;
        let title = match &s.attached {
            Some(url) => format!("cpu: attached to {url}, {} s", s.duration_s.unwrap_or(0.0)),
            None => format!(
                "cpu: {} mix, {} connection(s), sampling {}",
                s.mix,
                s.concurrency,
                s.sampling_rate.unwrap_or(1.0)
            ),
        };
        let subtitle = format!(
            "{} samples at {} Hz, {} requests, {} ({})",
            profile.total_samples, cpu_run.hz, cpu_run.requests, summary.git_commit, self.name
        );
        let svg = self.dir.join("flamegraph.svg");
        crate::render::flamegraph::write(&folded, &title, &subtitle, &svg)?;

        let mut headline_text = tables::cpu_headline(&headline);
        match &threads {
            Some(threads) => {
                if let Some(exporter) = threads.row(EXPORTER_THREAD) {
                    headline_text.push_str(&format!(
                        "               ({} of CPU by the export thread's own clock)\n",
                        tables::percent(exporter.cpu_share)
                    ));
                }
                let coverage = threads.coverage(cpu_run.cpu_seconds);
                headline_text.push_str(&format!(
                    "thread clocks  {} s, {} of the process's CPU seconds{}\n",
                    tables::fixed(threads.cpu_seconds, 2),
                    coverage.map_or_else(|| "-".into(), tables::percent),
                    if threads.covers(cpu_run.cpu_seconds) {
                        ""
                    } else {
                        " — warning: more than 5 % apart, so a thread was missed or a clock misread; the shares \
                         below are of the wrong whole"
                    }
                ));
                for row in threads.off() {
                    headline_text.push_str(&format!(
                        "warning        thread {} has {} of the samples but {} of the CPU by its own clock ({:+.1} \
                         points, more than ±{THREAD_SHARE_TOLERANCE_POINTS}): the profile misattributes CPU between \
                         threads\n",
                        row.name,
                        tables::percent(row.sample_share),
                        tables::percent(row.cpu_share),
                        row.gap_points()
                    ));
                }
            }
            None => headline_text.push_str(
                "threads        no per-thread clocks in pprof.json (an app whose sampler does not report them): the \
                 split between threads is unchecked\n",
            ),
        }
        if profile.total_samples < MIN_SAMPLES {
            let remedy = if s.attached.is_some() {
                "attach for longer (--seconds) or while the app is busier"
            } else {
                "use a longer --duration or more --concurrency"
            };
            headline_text.push_str(&format!(
                "warning        only {} samples (fewer than {MIN_SAMPLES}): rankings are coarse; {remedy}\n",
                profile.total_samples
            ));
        }
        if let Some(url) = &s.attached {
            let counts = if summary.sdk.is_object() {
                "CPU seconds, requests and the SDK's counters are the app's own counts over the window"
            } else {
                "CPU seconds and requests are the app's own counts over the window; it reports no SDK counters, so \
                 dropped spans are not checked"
            };
            headline_text.push_str(&format!(
                "attached       a {} s window of {url}: {counts}\n",
                s.duration_s.unwrap_or(0.0)
            ));
        }
        let calibration = Calibration::of(&profile);
        if let Some(c) = &calibration {
            headline_text.push_str(&format!("calibration    {}\n", c.describe()));
        }
        let clocks: BTreeMap<String, ClockedTime> = serde_json::from_value(match &run["calibration"] {
            Value::Null => Value::Object(Default::default()),
            v => v.clone(),
        })
        .context("run.json: `calibration` is not an object of function → {cpu_seconds, exact}")?;
        let clocked = threads
            .as_ref()
            .and_then(|threads| ClockCalibration::of(&clocks, &profile, threads));
        if let Some(c) = &clocked {
            for line in c.describe() {
                headline_text.push_str(&format!("calibration    {line}\n"));
            }
        }
        let sdk = &summary.sdk;
        let dropped = sdk["dropped"].as_u64().unwrap_or(0);
        let recorded = sdk["recorded"].as_u64().unwrap_or(0);
        if dropped > 0 {
            headline_text.push_str(&format!(
                "warning        the SDK dropped {dropped} of {} spans (export queue full): the exporter could not keep \
                 up, so the SDK's cost per request counts requests it did not export\n",
                dropped + recorded
            ));
        }
        if let Some(threads) = &threads {
            headline_text.push_str(&format!(
                "\nthreads (CPU by each thread's own clock, {} s in all, beside its samples)\n{}\n",
                tables::fixed(threads.cpu_seconds, 2),
                tables::thread_table(threads)
            ));
        }
        let perf_path = self.dir.join("perf.folded");
        let perf = if perf_path.exists() {
            let perf_folded = read_text(&perf_path)?;
            let check = crate::perf::PerfCheck::new(&perf_folded, &profile, threads.as_ref(), options)?;
            crate::render::flamegraph::write(
                &perf_folded,
                &format!("{title} — perf, kernel frames (_[k])"),
                &format!("{} perf samples ({})", check.samples, self.name),
                &self.dir.join("flamegraph-kernel.svg"),
            )?;
            Some(check)
        } else {
            None
        };
        let mut sections = vec![
            Section {
                heading: format!("cpu profile — {}", self.name),
                text: headline_text,
            },
            Section {
                heading: format!(
                    "Top {} by cumulative time ({})",
                    self.top,
                    match view {
                        CumulativeView::Focus => "workspace functions and the SDK's callees; --all-functions for all",
                        CumulativeView::All => "all functions",
                    }
                ),
                text: tables::cumulative_table(&profile, view, self.top, &scale).to_string(),
            },
            Section {
                heading: format!(
                    "Top {} by self time{}",
                    self.top,
                    if self.raw_leaves {
                        ""
                    } else {
                        " (inlined core/alloc/std leaves folded into their caller)"
                    }
                ),
                text: tables::self_table(&profile, self.top, &scale).to_string(),
            },
        ];
        if let Some(check) = &perf {
            sections.push(Section {
                heading: format!(
                    "perf on the same run ({} samples, {} in the kernel): share of samples per thread",
                    check.samples,
                    tables::percent(check.kernel_share)
                ),
                text: tables::perf_threads_table(check).to_string(),
            });
            sections.push(Section {
                heading: "perf on the same run: self time, each sample's kernel frames charged to its first \
                          user-space frame (what the sampler sees)"
                    .to_owned(),
                text: tables::perf_functions_table(check).to_string(),
            });
            sections.push(Section {
                heading: "perf on the same run: where the kernel time goes (leaf kernel functions; \
                          flamegraph-kernel.svg has the stacks)"
                    .to_owned(),
                text: tables::perf_kernel_table(check).to_string(),
            });
        }
        summary.cpu = Some(CpuSummary {
            headline,
            profile,
            threads,
            perf,
        });
        let failed_check = if self.check_calibration {
            calibration_failure(calibration.as_ref(), clocked.as_ref())
        } else {
            None
        };
        Ok(Report {
            sections,
            hints: vec![match &s.attached {
                Some(url) => format!(
                    "open flamegraph.svg in a browser (click to zoom, Ctrl-F to search); for the protobuf, the same \
                     endpoint answers `go tool pprof -http=: '{url}/debug/pprof/profile?seconds=10'`"
                ),
                None => format!(
                    "open flamegraph.svg in a browser (click to zoom, Ctrl-F to search); cpu.pb opens in `go tool \
                     pprof -http=: {}`, speedscope or Pyroscope",
                    self.shown("cpu.pb")
                ),
            }],
            files: [
                "flamegraph.svg",
                "flamegraph-kernel.svg",
                "perf.folded",
                "perf.data",
                "cpu.folded",
                "cpu.pb",
                "pprof.json",
                "run.json",
                "workload.json",
                "traces/",
            ]
            .map(PathBuf::from)
            .to_vec(),
            failed_check,
        })
    }

    /// mem: `dhat-heap.json` → totals and the top allocation sites by bytes, by blocks and at the peak.
    fn report_mem(&self, summary: &mut Summary) -> anyhow::Result<Report> {
        let path = self.dir.join("dhat-heap.json");
        let text = read_text(&path)?;
        let profile = HeapProfile::from_json(&text).with_context(|| format!("parsing {}", path.display()))?;
        let requests = summary.requests;
        let mut sections = vec![Section {
            heading: format!("heap profile — {} ({} requests served)", self.name, requests),
            text: tables::mem_totals_table(&profile, requests).to_string(),
        }];
        for ranking in MemRanking::ALL {
            sections.push(Section {
                heading: format!("Top {} {}", self.top, ranking.title()),
                text: tables::mem_sites_table(&profile, ranking, self.top, requests).to_string(),
            });
        }
        let per_request = |n: u64| if requests == 0 { 0.0 } else { n as f64 / requests as f64 };
        summary.mem = Some(MemSummary {
            bytes_per_request: per_request(profile.totals.bytes),
            allocations_per_request: per_request(profile.totals.blocks),
            profile,
        });
        let dh_view = [
            "/usr/libexec/valgrind/dh_view.html",
            "/usr/lib/x86_64-linux-gnu/valgrind/dh_view.html",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("https://nnethercote.github.io/dh_view/dh_view.html");
        Ok(Report {
            sections,
            hints: vec![format!(
                "open {dh_view} in a browser, click \"Load…\" and choose {}",
                self.shown("dhat-heap.json")
            )],
            files: ["dhat-heap.json", "run.json", "workload.json", "traces/"]
                .map(PathBuf::from)
                .to_vec(),
            failed_check: None,
        })
    }

    /// timeline: the Chrome trace → per stage and request span: calls, total, self, mean, p99.
    fn report_timeline(&self, summary: &mut Summary) -> anyhow::Result<Report> {
        let path = self.dir.join("timeline.json");
        let text = read_text(&path)?;
        let timeline = Timeline::from_json(&text).with_context(|| format!("parsing {}", path.display()))?;
        let sections = vec![Section {
            heading: format!(
                "Time per call — {} ({} requests served; deterministic counts from the SDK's tracing spans)",
                self.name, summary.requests
            ),
            text: tables::timeline_table(&timeline).to_string(),
        }];
        summary.timeline = Some(TimelineSummary { timeline });
        Ok(Report {
            sections,
            hints: vec![format!(
                "open https://ui.perfetto.dev, click \"Open trace file\" and choose {} (chrome://tracing opens it too)",
                self.shown("timeline.json")
            )],
            files: ["timeline.json", "run.json", "workload.json", "traces/"]
                .map(PathBuf::from)
                .to_vec(),
            failed_check: None,
        })
    }
}

/// Why `--check-calibration` fails, or `None` when every check it could make holds (and it could make one).
fn calibration_failure(ratio: Option<&Calibration>, clocks: Option<&ClockCalibration>) -> Option<String> {
    let mut off = Vec::new();
    if let Some(c) = ratio.filter(|c| !c.holds()) {
        off.push(c.describe());
    }
    if let Some(c) = clocks.filter(|c| !c.holds()) {
        off.extend(c.describe().into_iter().filter(|line| line.ends_with("OFF")));
    }
    match (ratio, clocks) {
        (None, None) => Some(
            "calibration failed: no samples in demo_app::calibrate::calibrate_* and no calibration clocks in run.json; \
             run with --mix calibrate=1 or --mix calibrate-threads"
                .into(),
        ),
        _ if off.is_empty() => None,
        _ => Some(format!("calibration failed: {}", off.join("; "))),
    }
}

/// A mix read from a file is made absolute: the workload runs in the workspace root, not in the caller's folder.
fn absolute_mix(mix: &str) -> anyhow::Result<String> {
    let file = mix.strip_prefix('@').or_else(|| mix.ends_with(".json").then_some(mix));
    match file {
        Some(path) => {
            let absolute = std::path::absolute(path).with_context(|| format!("resolving --mix {mix}"))?;
            if !absolute.is_file() {
                bail!("--mix {mix}: no such file {}", absolute.display());
            }
            Ok(format!("@{}", absolute.display()))
        }
        None => Ok(mix.to_owned()),
    }
}

fn step(n: u32, _name: &str, what: &str) {
    eprintln!("[{n}/4] {what}");
}

fn workload_facts(report: &Value) -> WorkloadFacts {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    WorkloadFacts {
        requests: report["requests"].as_u64().unwrap_or(0),
        failed: report["failed"].as_u64().unwrap_or(0),
        req_per_s: f(&report["req_per_s"]),
        elapsed_s: f(&report["elapsed_s"]),
        p50_us: f(&report["latency_us"]["p50"]),
        p99_us: f(&report["latency_us"]["p99"]),
    }
}

pub(crate) fn git_commit(sh: &Shell) -> String {
    let commit = cmd!(sh, "git rev-parse --short HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_else(|_| "unknown".into());
    let dirty = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|s| !s.trim().is_empty());
    if dirty { format!("{commit}+dirty") } else { commit }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::flags::{Command, Xtask};

    fn args(argv: &[&str]) -> ProfileArgs {
        let argv = ["cargo xtask", "profile"].into_iter().chain(argv.iter().copied());
        match Xtask::try_parse_from(argv).unwrap().command {
            Command::Profile(p) => p,
            other => panic!("not a profile command: {other:?}"),
        }
    }

    fn test_data(name: &str) -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join(name)).unwrap()
    }

    /// A run directory under a fresh root, as `profile` would have left it after step 4.
    fn run_dir(mode: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, ProfileRequest) {
        let root = tempfile::tempdir().unwrap();
        let request = args(&[mode, "--save", "run"]).into_request(root.path()).unwrap();
        std::fs::create_dir_all(&request.dir).unwrap();
        for (name, text) in files {
            std::fs::write(request.dir.join(name), text).unwrap();
        }
        (root, request)
    }

    fn summary(request: &ProfileRequest) -> Summary {
        Summary {
            version: crate::summary::SUMMARY_VERSION,
            name: request.name.clone(),
            mode: request.mode,
            started: request.started.clone(),
            settings: request.settings.clone(),
            git_commit: "abc1234".into(),
            rustc: "rustc 1.95.0".into(),
            requests: 100,
            workload: workload_facts(&Value::Null),
            durations: Durations {
                build_s: 0.0,
                run_s: 0.0,
                report_s: 0.0,
            },
            sdk: serde_json::json!({"recorded": 100, "dropped": 0}),
            cpu: None,
            mem: None,
            timeline: None,
        }
    }

    const PPROF_JSON: &str = r#"{"frequency": 99, "samples": 100, "cpu_seconds": 1.0, "requests": 100}"#;

    #[test]
    fn defaults_depend_on_the_mode() {
        let root = tempfile::tempdir().unwrap();
        let cpu = args(&["cpu"]).into_request(root.path()).unwrap();
        assert_eq!(
            (cpu.settings.duration_s, cpu.settings.concurrency, cpu.settings.hz),
            (Some(10.0), 4, Some(99))
        );
        assert!(cpu.name.starts_with("cpu-") && cpu.dir == root.path().join("results").join(&cpu.name));
        let mem = args(&["mem"]).into_request(root.path()).unwrap();
        assert_eq!(
            (mem.settings.iterations, mem.settings.concurrency, mem.settings.hz),
            (Some(500), 1, None)
        );
        assert_eq!(
            args(&["timeline"])
                .into_request(root.path())
                .unwrap()
                .settings
                .iterations,
            Some(1000)
        );
        assert_eq!(
            cpu.workload_args(),
            ["--concurrency", "4", "--mix", "seed", "--duration", "10000ms"]
        );
    }

    #[test]
    fn refusals_come_before_any_work_and_overwrite_nothing() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("results/before")).unwrap();
        std::fs::write(root.path().join("results/before/summary.json"), "kept").unwrap();
        for (argv, needle) in [
            (&["cpu", "--save", "before"][..], "results/before exists"),
            (&["cpu", "--transforms", "no-such.yaml"][..], "no such file"),
            (&["mem", "--check-calibration"][..], "cpu check"),
        ] {
            let err = args(argv).into_request(root.path()).unwrap_err();
            assert!(format!("{err:#}").contains(needle), "{argv:?}: {err:#}");
        }
        let kept = std::fs::read_to_string(root.path().join("results/before/summary.json")).unwrap();
        assert_eq!(kept, "kept");
    }

    #[test]
    fn a_cpu_run_directory_becomes_tables_a_flame_graph_and_a_headline() {
        let (_root, request) = run_dir(
            "cpu",
            &[
                ("pprof.json", PPROF_JSON),
                ("cpu.folded", &test_data("cpu-small.folded")),
            ],
        );
        let mut summary = summary(&request);
        let report = request.report_cpu(&mut summary, &Value::Null).unwrap();
        assert_eq!(report.sections.len(), 3);
        assert!(
            report.hints[0].contains("`go tool pprof -http=: results/run/cpu.pb`"),
            "repo-relative: {}",
            report.hints[0]
        );
        assert!(
            report.sections[0].text.contains("capture ratio"),
            "{}",
            report.sections[0].text
        );
        assert!(
            report.sections[0].text.contains("fewer than 1000"),
            "a 100-sample run is flagged"
        );
        assert!(report.failed_check.is_none());
        let svg = std::fs::read_to_string(request.dir.join("flamegraph.svg")).unwrap();
        assert!(svg.contains("drift_sdk::to_clean_span::hashes"));
        let cpu = summary.cpu.unwrap();
        assert_eq!(cpu.profile.total_samples, 100);
    }

    #[test]
    fn missing_and_truncated_profiles_are_one_clear_error() {
        let (_root, request) = run_dir("cpu", &[("pprof.json", PPROF_JSON)]);
        let err = request.report_cpu(&mut summary(&request), &Value::Null).unwrap_err();
        assert!(format!("{err:#}").contains("cpu.folded"), "{err:#}");

        let folded = test_data("cpu-small.folded");
        let truncated = &folded[..folded.len() - 4];
        let (_root, request) = run_dir("cpu", &[("pprof.json", PPROF_JSON), ("cpu.folded", truncated)]);
        let err = request.report_cpu(&mut summary(&request), &Value::Null).unwrap_err();
        assert!(format!("{err:#}").contains("truncated"), "{err:#}");

        let (_root, request) = run_dir("mem", &[]);
        let err = request.report_mem(&mut summary(&request)).unwrap_err();
        assert!(format!("{err:#}").contains("dhat-heap.json"), "{err:#}");

        let timeline = test_data("timeline-small.json");
        let (_root, request) = run_dir("timeline", &[("timeline.json", &timeline[..timeline.len() / 2])]);
        let err = request.report_timeline(&mut summary(&request)).unwrap_err();
        assert!(format!("{err:#}").contains("truncated"), "{err:#}");
    }

    #[test]
    fn mem_and_timeline_run_directories_become_tables() {
        let (_root, request) = run_dir("mem", &[("dhat-heap.json", &test_data("dhat-small.json"))]);
        let mut s = summary(&request);
        let report = request.report_mem(&mut s).unwrap();
        assert_eq!(report.sections.len(), 4, "totals and three rankings");
        assert!(report.hints[0].contains("dh_view.html"));
        assert!(
            report.hints[0].ends_with("choose results/run/dhat-heap.json"),
            "{}",
            report.hints[0]
        );
        assert!(s.mem.unwrap().bytes_per_request > 0.0);

        let (_root, request) = run_dir("timeline", &[("timeline.json", &test_data("timeline-small.json"))]);
        let mut s = summary(&request);
        let report = request.report_timeline(&mut s).unwrap();
        assert!(report.hints[0].contains("ui.perfetto.dev"));
        assert!(
            report.hints[0].contains("choose results/run/timeline.json "),
            "{}",
            report.hints[0]
        );
        assert!(!s.timeline.unwrap().timeline.stages.is_empty());
    }
    #[test]
    fn check_calibration_needs_a_check_it_can_make_and_names_what_is_off() {
        let none = calibration_failure(None, None).unwrap();
        assert!(none.contains("calibrate-threads"), "{none}");
        let ratio = |samples| Calibration { samples };
        assert_eq!(calibration_failure(Some(&ratio([600, 300, 100])), None), None);
        let off = calibration_failure(Some(&ratio([700, 200, 100])), None).unwrap();
        assert!(off.contains("70.0 / 20.0 / 10.0"), "{off}");
        let clocks = ClockCalibration {
            functions: vec![],
            threads: vec![("drift-exporter".into(), -4.0), ("tokio-rt-worker".into(), 3.0)],
        };
        let off = calibration_failure(Some(&ratio([600, 300, 100])), Some(&clocks)).unwrap();
        assert!(
            off.contains("worst: drift-exporter -4.0 points") && !off.contains("60.0 / 30.0"),
            "{off}"
        );
    }
}
