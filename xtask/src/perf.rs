//! `profile cpu --kernel`: `perf record` on the same run, for kernel frames and an independent check of the sampler.
//!
//! The demo app's own sampler sees user space only: a sample taken during a system call shows the stack that made
//! it. perf's `cpu-clock` event is sampled by the kernel itself (an hrtimer per thread, not tick-bound, counted in
//! the thread's own CPU time), with kernel frames and, through `--call-graph dwarf`, the user stack unwound from a
//! copy of it. Running both on the same run gives:
//!
//! - `perf.data`, and `perf.folded` (inferno's perf collapser; the root frame is the thread's name, kernel
//!   functions end in `_[k]`) rendered as `flamegraph-kernel.svg`;
//! - [`PerfCheck`]: perf's share of samples per thread, and its self share per function once each sample's kernel
//!   frames are charged to its first user-space frame (what the sampler sees), beside the sampler's.
//!
//! It needs Debian's `linux-perf` and perf events with kernel access (root, CAP_PERFMON, or
//! `kernel.perf_event_paranoid` ≤ 1); [`check_available`] says what is missing before any work.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use inferno::collapse::Collapse;
use serde::{Deserialize, Serialize};
use xshell::{Shell, cmd};

use crate::parse::folded::{CpuOptions, CpuProfile};
use crate::parse::threads::ThreadTable;

/// What marks a kernel frame in `perf.folded` (inferno's `annotate_kernel`).
pub const KERNEL_SUFFIX: &str = "_[k]";
/// Rows of the function comparison.
pub const COMPARED_FUNCTIONS: usize = 12;
/// How long perf may take to write `perf.data` once the app has exited.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Fails with what to do when `perf record` cannot sample kernel frames here.
pub fn check_available(sh: &Shell) -> anyhow::Result<()> {
    if cmd!(sh, "perf --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        bail!(
            "--kernel needs perf: install it (Debian: `apt-get install -y linux-perf`), or run without --kernel (the \
             sampler itself needs no perf)"
        );
    }
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let root = cmd!(sh, "id -u").quiet().read().is_ok_and(|id| id.trim() == "0");
    match paranoid {
        Some(level) if level > 1 && !root => bail!(
            "--kernel needs perf events with kernel frames, and kernel.perf_event_paranoid is {level} for a non-root \
             user: run as root, give perf CAP_PERFMON, or `sysctl kernel.perf_event_paranoid=1`"
        ),
        _ => Ok(()),
    }
}

/// A `perf record` attached to the app.
pub struct Recording {
    child: Child,
    log: PathBuf,
}

impl Recording {
    /// Starts `perf record -e cpu-clock -c 1e9/HZ --call-graph dwarf -k CLOCK_MONOTONIC -p PID -o DATA` (stderr to
    /// `log`), and gives it a moment to attach to every thread. Samples are stamped with `CLOCK_MONOTONIC`, the clock
    /// of the sampler's window.
    pub fn start(sh: &Shell, pid: u32, hz: u32, data: &Path, log: &Path) -> anyhow::Result<Recording> {
        // A fixed period (-c), not a frequency (-F): perf's frequency mode retunes each event's period as it goes.
        let (pid, period) = (pid.to_string(), (1_000_000_000 / u64::from(hz.max(1))).to_string());
        let stderr = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut command: Command = cmd!(
            sh,
            "perf record --quiet -e cpu-clock -c {period} --call-graph dwarf -k CLOCK_MONOTONIC -p {pid} -o {data}"
        )
        .into();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("starting perf record")?;
        std::thread::sleep(Duration::from_millis(500));
        if let Some(status) = child.try_wait().context("polling perf record")? {
            bail!(
                "perf record exited at once ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default().trim()
            );
        }
        Ok(Recording {
            child,
            log: log.to_path_buf(),
        })
    }

    /// Waits for perf to write its data after the app has exited (SIGINT after [`STOP_TIMEOUT`]).
    pub fn finish(mut self, sh: &Shell) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for perf record")? {
                // perf exits with the signal's code when interrupted; what matters is that it wrote its data.
                let _ = status;
                return Ok(());
            }
            if started.elapsed() > STOP_TIMEOUT {
                let pid = self.child.id().to_string();
                let _ = cmd!(sh, "kill -INT {pid}").quiet().run();
                let _ = self.child.wait();
                bail!(
                    "perf record was still running {STOP_TIMEOUT:?} after the app exited; see {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `perf script` of `data`, the samples inside `window` (`CLOCK_MONOTONIC` seconds, when known) collapsed into folded
/// stacks (root frame: the thread's name; kernel frames `_[k]`).
pub fn folded(sh: &Shell, data: &Path, window: Option<(f64, f64)>) -> anyhow::Result<String> {
    // Without the period field, each sample counts 1 (inferno weighs a sample by its period when perf prints it).
    let script = cmd!(sh, "perf script -i {data} -F comm,tid,time,event,ip,sym,dso")
        .quiet()
        .ignore_stderr()
        .read()
        .with_context(|| format!("perf script -i {}", data.display()))?;
    match window {
        Some(window) => collapse(&within(&script, window)),
        None => collapse(&script),
    }
}

/// The samples of `perf script` text stamped inside `[from, to]` seconds. A sample is a header line
/// (`comm tid time: event:`) and its frames, up to a blank line.
pub fn within(script: &str, (from, to): (f64, f64)) -> String {
    let mut out = String::with_capacity(script.len());
    let mut keep = false;
    for line in script.lines() {
        if !line.starts_with(char::is_whitespace) && !line.is_empty() {
            let time = line
                .split_ascii_whitespace()
                .find_map(|field| field.strip_suffix(':').and_then(|t| t.parse::<f64>().ok()));
            keep = time.is_some_and(|t| (from..=to).contains(&t));
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Collapses `perf script` text into folded stacks.
pub fn collapse(script: &str) -> anyhow::Result<String> {
    let mut options = inferno::collapse::perf::Options::default();
    options.annotate_kernel = true;
    options.nthreads = 1;
    let mut out = Vec::new();
    inferno::collapse::perf::Folder::from(options)
        .collapse(script.as_bytes(), &mut out)
        .context("collapsing perf script's output")?;
    String::from_utf8(out).context("perf's folded stacks are not UTF-8")
}

/// Each stack of `folded` without its kernel frames: a sample in the kernel is charged to the user-space frame that
/// made the system call, as the sampler sees it. A stack of kernel frames only keeps one frame, `[kernel]`.
pub fn without_kernel_frames(folded: &str) -> String {
    let mut out = String::with_capacity(folded.len());
    for line in folded.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let mut frames: Vec<&str> = stack.split(';').collect();
        while frames.len() > 1 && frames.last().is_some_and(|f| f.ends_with(KERNEL_SUFFIX)) {
            frames.pop();
        }
        if frames.len() == 1 {
            frames.push("[kernel]");
        }
        out.push_str(&frames.join(";"));
        out.push(' ');
        out.push_str(count);
        out.push('\n');
    }
    out
}

/// perf's view of the run beside the sampler's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfCheck {
    /// perf's samples.
    pub samples: u64,
    /// Samples with a kernel frame at the leaf, ÷ all of perf's.
    pub kernel_share: f64,
    pub threads: Vec<ThreadShares>,
    pub functions: Vec<FunctionShares>,
    /// perf's top kernel functions by self samples (the leaf kernel frame), with their shares.
    pub kernel_functions: Vec<(String, f64)>,
}

/// One thread group by perf, by the sampler, and by its clocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadShares {
    pub name: String,
    pub perf_share: f64,
    pub sampler_share: f64,
    /// `None` when the sampler reported no clocks.
    pub clock_share: Option<f64>,
}

/// One function's self share by the sampler and by perf (kernel frames charged to the first user-space frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionShares {
    pub name: String,
    pub sampler_share: f64,
    pub perf_share: f64,
}

impl FunctionShares {
    /// sampler − perf, in percentage points.
    pub fn gap_points(&self) -> f64 {
        (self.sampler_share - self.perf_share) * 100.0
    }
}

impl PerfCheck {
    /// Lines up perf's folded stacks with the sampler's profile (computed with `options`).
    pub fn new(
        perf_folded: &str,
        sampler: &CpuProfile,
        clocks: Option<&ThreadTable>,
        options: CpuOptions,
    ) -> anyhow::Result<PerfCheck> {
        let full = CpuProfile::from_folded(perf_folded, options).context("parsing perf.folded")?;
        let charged = CpuProfile::from_folded(&without_kernel_frames(perf_folded), options)
            .context("parsing perf.folded without its kernel frames")?;
        let kernel_functions: Vec<(String, f64)> = full
            .self_ranking()
            .into_iter()
            .filter(|f| f.name.ends_with(KERNEL_SUFFIX))
            .take(COMPARED_FUNCTIONS)
            .map(|f| (f.name.clone(), full.share(f.self_samples)))
            .collect();
        let kernel_samples: u64 = full
            .functions
            .iter()
            .filter(|f| f.name.ends_with(KERNEL_SUFFIX))
            .map(|f| f.self_samples)
            .sum();
        let mut names: BTreeSet<&str> = BTreeSet::new();
        names.extend(sampler.threads.iter().map(|t| t.name.as_str()));
        names.extend(full.threads.iter().map(|t| t.name.as_str()));
        let samples_of =
            |p: &CpuProfile, name: &str| p.threads.iter().find(|t| t.name == name).map_or(0, |t| t.samples);
        let mut threads: Vec<ThreadShares> = names
            .into_iter()
            .map(|name| ThreadShares {
                name: name.to_owned(),
                perf_share: full.share(samples_of(&full, name)),
                sampler_share: sampler.share(samples_of(sampler, name)),
                clock_share: clocks.map(|c| c.row(name).map_or(0.0, |r| r.cpu_share)),
            })
            .collect();
        threads.sort_by(|a, b| b.perf_share.total_cmp(&a.perf_share).then_with(|| a.name.cmp(&b.name)));
        let mut picked: Vec<&str> = Vec::new();
        for f in sampler
            .self_ranking()
            .into_iter()
            .take(COMPARED_FUNCTIONS)
            .chain(charged.self_ranking().into_iter().take(COMPARED_FUNCTIONS))
        {
            if !picked.contains(&f.name.as_str()) {
                picked.push(&f.name);
            }
        }
        let self_of = |p: &CpuProfile, name: &str| {
            p.functions
                .iter()
                .find(|f| f.name == name)
                .map_or(0, |f| f.self_samples)
        };
        let mut functions: Vec<FunctionShares> = picked
            .into_iter()
            .map(|name| FunctionShares {
                name: name.to_owned(),
                sampler_share: sampler.share(self_of(sampler, name)),
                perf_share: charged.share(self_of(&charged, name)),
            })
            .collect();
        functions.sort_by(|a, b| {
            b.perf_share
                .max(b.sampler_share)
                .total_cmp(&a.perf_share.max(a.sampler_share))
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(PerfCheck {
            samples: full.total_samples,
            kernel_share: full.share(kernel_samples),
            threads,
            functions,
            kernel_functions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two samples of `perf script -F comm,tid,time,event,ip,sym,dso` with `--call-graph dwarf`, as perf 6 prints
    /// them.
    const SCRIPT: &str = "\
drift-exporter 28647  1992.661535: cpu-clock: 
\tffffffff817d30e9 find_inode_bit ([kernel.kallsyms])
\tffffffff817d4c15 __ext4_new_inode ([kernel.kallsyms])
\tffffffff81000130 entry_SYSCALL_64_after_hwframe ([kernel.kallsyms])
\t           f8090 __libc_open64 (inlined)
\t          2b1fde drift_sdk::export::file::FileExporter::write_span (inlined)
\t          26a974 drift_sdk::processor::ExportWorker::run (/work/target/profiling/demo-app)

tokio-rt-worker 28645  1992.671683: cpu-clock: 
\t          4d21f5 drift_sdk::capture::inbound::respond (/work/target/profiling/demo-app)
\t          26a974 tokio::runtime::task::harness::poll (/work/target/profiling/demo-app)

";

    #[test]
    fn perf_script_collapses_with_the_thread_first_and_kernel_frames_marked() {
        let folded = collapse(SCRIPT).unwrap();
        assert_eq!(
            folded,
            "drift-exporter;drift_sdk::processor::ExportWorker::run;drift_sdk::export::file::FileExporter::write_span;\
             __libc_open64;entry_SYSCALL_64_after_hwframe_[k];__ext4_new_inode_[k];find_inode_bit_[k] 1\n\
             tokio-rt-worker;tokio::runtime::task::harness::poll;drift_sdk::capture::inbound::respond 1\n"
        );
        assert_eq!(
            without_kernel_frames(&folded),
            "drift-exporter;drift_sdk::processor::ExportWorker::run;drift_sdk::export::file::FileExporter::write_span;\
             __libc_open64 1\n\
             tokio-rt-worker;tokio::runtime::task::harness::poll;drift_sdk::capture::inbound::respond 1\n"
        );
        assert_eq!(without_kernel_frames("idle;a_[k] 3\n"), "idle;[kernel] 3\n");
    }

    #[test]
    fn only_the_samples_inside_the_window_are_kept() {
        let kept = within(SCRIPT, (1992.66, 1992.67));
        assert!(
            kept.starts_with("drift-exporter 28647") && !kept.contains("tokio-rt-worker"),
            "{kept}"
        );
        assert_eq!(collapse(&within(SCRIPT, (0.0, 1.0))).unwrap(), "");
        assert_eq!(within(SCRIPT, (0.0, 3000.0)).lines().count(), SCRIPT.lines().count());
    }

    #[test]
    fn the_check_charges_kernel_time_to_the_first_user_frame() {
        let perf = "exporter;run;open64;sys_openat_[k];ext4_create_[k] 6\nexporter;run;open64 1\nworker;poll 3\n";
        let sampler = CpuProfile::from_folded("exporter;run;open64 6\nworker;poll 4\n", CpuOptions::default()).unwrap();
        let check = PerfCheck::new(perf, &sampler, None, CpuOptions::default()).unwrap();
        assert_eq!(check.samples, 10);
        assert!((check.kernel_share - 0.6).abs() < 1e-9);
        assert_eq!(check.kernel_functions, [("ext4_create_[k]".to_owned(), 0.6)]);
        let open = check.functions.iter().find(|f| f.name == "open64").unwrap();
        assert!((open.perf_share - 0.7).abs() < 1e-9 && (open.sampler_share - 0.6).abs() < 1e-9);
        assert!((open.gap_points() + 10.0).abs() < 1e-9);
        let exporter = &check.threads[0];
        assert_eq!(exporter.name, "exporter");
        assert!((exporter.perf_share - 0.7).abs() < 1e-9 && exporter.clock_share.is_none());
    }
}
