//! `cargo xtask faults stall|shutdown`: the reliability checks of issue 7 that are too long for CI, run against the
//! release demo app and the workload, each printing its checks with the measured figure and exiting 1 if one fails.
//!
//! - `stall`: the SDK exports to a Tusk API receiver (here, on loopback) that stops answering for `--stall` (60 s)
//!   under steady paced load. Request latency must not notice (p99 within 1.1× of the same load without a stall),
//!   memory stays bounded by the queue, drops are counted and logged once, and export resumes by itself.
//! - `shutdown`: 100,000 recorded requests, then SIGINT: every accepted span is on disk
//!   (lines = recorded − dropped − blocked), with no drops at this load.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use xshell::Shell;

use crate::Failure;
use crate::bench::RssSampler;
use crate::collect::{self, App, Binaries};
use crate::flags::{FaultCheck, FaultsArgs};
use crate::render::tables::{bytes, fixed, table, thousands};

/// A receiver's answer to `ExportSpans`: `ExportSpansResponse { success: true }` in protobuf (field 1, varint 1).
const EXPORT_SUCCESS: &[u8] = b"\x08\x01";

/// One check and its measured figure.
struct Check {
    what: String,
    limit: String,
    measured: String,
    holds: bool,
}

impl FaultsArgs {
    pub fn run(self, sh: &Shell, root: &Path) -> Result<(), Failure> {
        let results = root.join("results");
        let (name, _started) =
            crate::summary::new_run(&results, self.save.clone(), &format!("faults-{}", self.check.name()))
                .map_err(Failure::Usage)?;
        let dir = results.join(&name);
        eprintln!("[build] demo-app and the workload (release)");
        let binaries = collect::build_with(sh, root, "release", None).context("building")?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (checks, facts) = match self.check {
            FaultCheck::Stall => self.stall(&binaries, &dir)?,
            FaultCheck::Shutdown => self.shutdown(sh, &binaries, &dir)?,
        };
        let mut t = table(&["check", "limit", "measured", "holds"], &[]);
        for c in &checks {
            t.add_row(vec![
                c.what.clone(),
                c.limit.clone(),
                c.measured.clone(),
                if c.holds { "yes" } else { "NO" }.to_owned(),
            ]);
        }
        let text = format!("cargo xtask faults {} — {name}\n{t}\n", self.check.name());
        println!("{text}");
        std::fs::write(dir.join("faults.txt"), &text).context("writing faults.txt")?;
        let json = json!({
            "check": self.check.name(),
            "facts": facts,
            "checks": checks.iter().map(|c| json!({
                "what": c.what, "limit": c.limit, "measured": c.measured, "holds": c.holds,
            })).collect::<Vec<_>>(),
        });
        let json = serde_json::to_string_pretty(&json).context("encoding faults.json")?;
        std::fs::write(dir.join("faults.json"), json + "\n").context("writing faults.json")?;
        println!(
            "files in {}: faults.txt, faults.json, and each phase's logs",
            dir.strip_prefix(root).unwrap_or(&dir).display()
        );
        if let Some(failed) = checks.iter().find(|c| !c.holds) {
            return Err(Failure::Run(anyhow::anyhow!("check failed: {}", failed.what)));
        }
        Ok(())
    }

    /// Two runs at the same paced load against a loopback receiver: one healthy throughout, one whose receiver
    /// stops answering for `--stall` after `--before`.
    fn stall(&self, binaries: &Binaries, dir: &Path) -> anyhow::Result<(Vec<Check>, Value)> {
        let receiver = Receiver::start()?;
        let run = |phase: &str, stall: bool| -> anyhow::Result<Phase> {
            let phase_dir = dir.join(phase);
            std::fs::create_dir_all(phase_dir.join(".tusk"))?;
            std::fs::write(
                phase_dir.join(".tusk/config.yaml"),
                format!(
                    "service:\n  id: faults-check\nrecording:\n  export_spans: true\ntusk_api:\n  url: http://{}\n",
                    receiver.addr
                ),
            )?;
            // The app reads .tusk/config.yaml from its working directory, and the API key from the environment.
            let sh = Shell::new()?;
            sh.change_dir(&phase_dir);
            sh.set_var("TUSK_API_KEY", "faults-check");
            let args: Vec<String> = ["--mode", "record", "--listen", "127.0.0.1:0", "--log-level", "info"]
                .map(str::to_owned)
                .to_vec();
            let mut app = App::start(&sh, &binaries.demo_app, &args, &phase_dir.join("demo-app.log"))?;
            let sampler = RssSampler::start(app.pid());
            let total = self.before + if stall { self.stall + self.after } else { self.after };
            let stalled_at = Instant::now() + self.before;
            let answered_at_start = receiver.answered.load(Ordering::Relaxed);
            let toggler = stall.then(|| {
                let (flag, stall_for, answered) = (receiver.stalled.clone(), self.stall, receiver.answered.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(stalled_at.saturating_duration_since(Instant::now()));
                    flag.store(true, Ordering::Relaxed);
                    eprintln!("[stall] the receiver stops answering for {}", seconds(stall_for));
                    std::thread::sleep(stall_for);
                    flag.store(false, Ordering::Relaxed);
                    eprintln!("[stall] the receiver answers again");
                    answered.load(Ordering::Relaxed)
                })
            });
            eprintln!("[{phase}] workload for {}", seconds(total));
            let workload_args = self.paced_seed(&["--duration", &format!("{}ms", total.as_millis())]);
            let result = collect::run_workload(
                &sh,
                &binaries.workload,
                &app.url,
                &workload_args,
                &phase_dir.join("workload.json"),
                &phase_dir.join("workload.txt"),
            );
            let rss = sampler.stop();
            app.check_alive()?;
            let (status, report) = result?;
            let answered_at_stall_end = match toggler {
                Some(t) => t.join().map_err(|_| anyhow::anyhow!("the stall timer panicked"))?,
                None => answered_at_start,
            };
            let answered_at_end = receiver.answered.load(Ordering::Relaxed);
            let stopped = app.stop(&sh)?;
            if !status.success() {
                bail!(
                    "the {phase} workload failed ({status}): {} failed requests",
                    report["failed"]
                );
            }
            let log = std::fs::read_to_string(phase_dir.join("demo-app.log")).unwrap_or_default();
            Ok(Phase {
                p99_us: report["latency_us"]["p99"].as_f64().unwrap_or(0.0),
                requests: report["requests"].as_u64().unwrap_or(0),
                late: report["late"].as_u64().unwrap_or(0),
                sdk: stopped["sdk"].clone(),
                rss_kib: rss,
                queue_full_warnings: log.matches("export queue is full: dropping spans").count(),
                drop_rate_warnings: log.matches("is dropping over 5% of its spans").count(),
                answered_after_stall: answered_at_end.saturating_sub(answered_at_stall_end),
            })
        };
        let healthy = run("no-stall", false)?;
        let stalled = run("stall", true)?;

        let u = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
        let (recorded, exported, dropped, failed) = (
            u(&stalled.sdk, "recorded"),
            u(&stalled.sdk, "exported"),
            u(&stalled.sdk, "dropped"),
            u(&stalled.sdk, "failed"),
        );
        // RSS during the stall: readings every 100 ms, from `before` to `before + stall`.
        let tick = 0.1;
        let from = (self.before.as_secs_f64() / tick) as usize;
        let to = ((self.before + self.stall).as_secs_f64() / tick) as usize;
        let during: &[u64] = stalled.rss_kib.get(from..to.min(stalled.rss_kib.len())).unwrap_or(&[]);
        let half = during.len() / 2;
        let max = |s: &[u64]| s.iter().copied().max().unwrap_or(0) as f64;
        let first_half_peak = max(&during[..half]);
        let second_half_peak = max(&during[half..]);
        let growth_mib = (second_half_peak - first_half_peak) / 1024.0;
        let at_start = during.first().copied().unwrap_or(0) as f64;
        let p99_ratio = if healthy.p99_us > 0.0 {
            stalled.p99_us / healthy.p99_us
        } else {
            0.0
        };
        let checks = vec![
            Check {
                what: format!(
                    "p99 latency, {} req/s with a {} stall vs without",
                    thousands(self.rate as u64),
                    seconds(self.stall)
                ),
                limit: if self.smoke {
                    "≤ 1.10 × (not judged: --smoke)".into()
                } else {
                    "≤ 1.10 ×".into()
                },
                measured: format!(
                    "{p99_ratio:.3} × ({} µs vs {} µs)",
                    fixed(stalled.p99_us, 0),
                    fixed(healthy.p99_us, 0)
                ),
                holds: self.smoke || (p99_ratio <= 1.10 && p99_ratio > 0.0),
            },
            Check {
                what: "the workload kept its pace (late requests)".into(),
                limit: "≤ 1 % in both runs".into(),
                measured: format!(
                    "{} of {} / {} of {}",
                    thousands(healthy.late),
                    thousands(healthy.requests),
                    thousands(stalled.late),
                    thousands(stalled.requests)
                ),
                holds: healthy.late * 100 <= healthy.requests && stalled.late * 100 <= stalled.requests,
            },
            Check {
                what: "memory during the stall: peak of its second half − peak of its first".into(),
                limit: "≤ 2 MiB (bounded by the queue)".into(),
                measured: format!(
                    "{} MiB (RSS {} at the stall's start, {} peak)",
                    fixed(growth_mib, 2),
                    bytes(at_start * 1024.0),
                    bytes(second_half_peak.max(first_half_peak) * 1024.0)
                ),
                holds: during.len() >= 20 && growth_mib <= 2.0,
            },
            Check {
                what: "spans the full queue refused, counted in stats().dropped".into(),
                limit: "> 0, and recorded = exported + failed".into(),
                measured: format!(
                    "{} dropped; {} recorded = {} exported + {} failed",
                    thousands(dropped),
                    thousands(recorded),
                    thousands(exported),
                    thousands(failed)
                ),
                holds: dropped > 0 && recorded == exported + failed,
            },
            Check {
                what: "warnings in the app's log: queue full / dropping over 5 %".into(),
                limit: "1 / at most 1".into(),
                measured: format!("{} / {}", stalled.queue_full_warnings, stalled.drop_rate_warnings),
                holds: stalled.queue_full_warnings == 1 && stalled.drop_rate_warnings <= 1,
            },
            Check {
                what: "export requests answered after the receiver recovered".into(),
                limit: "> 0 (export resumes by itself)".into(),
                measured: thousands(stalled.answered_after_stall),
                holds: stalled.answered_after_stall > 0,
            },
        ];
        let facts = json!({
            "rate": self.rate, "concurrency": self.concurrency,
            "before_s": self.before.as_secs_f64(), "stall_s": self.stall.as_secs_f64(), "after_s": self.after.as_secs_f64(),
            "no_stall": healthy.to_json(), "stall": stalled.to_json(),
        });
        Ok((checks, facts))
    }

    /// `--requests` recorded requests into trace files, then SIGINT: every accepted span must be on disk.
    fn shutdown(&self, sh: &Shell, binaries: &Binaries, dir: &Path) -> anyhow::Result<(Vec<Check>, Value)> {
        let name = dir
            .file_name()
            .map_or_else(|| "faults".into(), |n| n.to_string_lossy().into_owned());
        let traces = collect::traces_dir(self.traces_dir.as_deref(), &name, dir)?;
        eprintln!("[shutdown] trace files go to {}", traces.display());
        let args: Vec<String> = vec![
            "--mode".into(),
            "record".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--traces-dir".into(),
            traces.display().to_string(),
        ];
        let mut app = App::start(sh, &binaries.demo_app, &args, &dir.join("demo-app.log"))?;
        eprintln!("[shutdown] {} requests, then SIGINT", thousands(self.requests));
        let workload_args = self.paced_seed(&["--iterations", &self.requests.to_string(), "--warmup", "0"]);
        let (status, report) = collect::run_workload(
            sh,
            &binaries.workload,
            &app.url,
            &workload_args,
            &dir.join("workload.json"),
            &dir.join("workload.txt"),
        )?;
        app.check_alive()?;
        let stopped = app.stop(sh)?;
        if !status.success() {
            bail!("the workload failed ({status}): {} failed requests", report["failed"]);
        }
        eprintln!("[shutdown] counting the lines on disk");
        let (files, lines) = count_lines(&traces)?;
        let u = |k: &str| stopped["sdk"][k].as_u64().unwrap_or(0);
        let (recorded, dropped, blocked, exported, failed) =
            (u("recorded"), u("dropped"), u("blocked"), u("exported"), u("failed"));
        // `recorded` counts the spans the queue accepted, `dropped` the ones it refused: both were recorded by the
        // layer, so the "recorded − dropped − blocked" is `recorded − blocked` in our counters.
        let expected = recorded.saturating_sub(blocked);
        let checks = vec![
            Check {
                what: format!(
                    "spans recorded: accepted + dropped ({} requests sent)",
                    thousands(report["requests"].as_u64().unwrap_or(0))
                ),
                limit: format!("≥ {}", thousands(self.requests)),
                measured: format!("{} + {}", thousands(recorded), thousands(dropped)),
                holds: recorded + dropped >= self.requests,
            },
            Check {
                what: "spans dropped at this load".into(),
                limit: "0".into(),
                measured: thousands(dropped),
                holds: dropped == 0,
            },
            Check {
                what: "lines on disk after a graceful shutdown".into(),
                limit: "= recorded − dropped − blocked".into(),
                measured: format!(
                    "{} lines in {} files; {} − {} − {} = {}",
                    thousands(lines),
                    thousands(files),
                    thousands(recorded + dropped),
                    thousands(dropped),
                    thousands(blocked),
                    thousands(expected)
                ),
                holds: lines == expected && failed == 0 && exported == lines,
            },
        ];
        let facts = json!({"sdk": stopped["sdk"], "files": files, "lines": lines, "workload": report});
        std::fs::remove_dir_all(&traces).with_context(|| format!("removing {}", traces.display()))?;
        Ok((checks, facts))
    }
}

impl FaultsArgs {
    /// The workload's flags: the seed mix at `--rate` over `--concurrency` connections, then `more`.
    fn paced_seed(&self, more: &[&str]) -> Vec<String> {
        let (rate, concurrency) = (self.rate.to_string(), self.concurrency.to_string());
        ["--mix", "seed", "--rate", &rate, "--concurrency", &concurrency]
            .iter()
            .chain(more)
            .map(|s| (*s).to_owned())
            .collect()
    }
}

/// What one stall-check run measured.
struct Phase {
    p99_us: f64,
    requests: u64,
    late: u64,
    sdk: Value,
    rss_kib: Vec<u64>,
    queue_full_warnings: usize,
    drop_rate_warnings: usize,
    answered_after_stall: u64,
}

impl Phase {
    fn to_json(&self) -> Value {
        json!({
            "p99_us": self.p99_us, "requests": self.requests, "late": self.late, "sdk": self.sdk,
            "queue_full_warnings": self.queue_full_warnings, "drop_rate_warnings": self.drop_rate_warnings,
            "answered_after_stall": self.answered_after_stall,
            "rss_kib": self.rss_kib,
        })
    }
}

/// `60 s`, `1.5 s`.
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Trace files and their lines under `dir`.
fn count_lines(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut lines) = (0, 0);
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        files += 1;
        lines += text.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok((files, lines))
}

/// A Tusk API receiver on 127.0.0.1: answers every export with success, except while `stalled`, when it reads the
/// request and never answers it (the SDK's request times out).
struct Receiver {
    addr: std::net::SocketAddr,
    stalled: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
}

impl Receiver {
    fn start() -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the receiver")?;
        let addr = listener.local_addr()?;
        let (stalled, answered) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, a) = (stalled.clone(), answered.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (s, a) = (s.clone(), a.clone());
                std::thread::spawn(move || serve(stream, &s, &a));
            }
        });
        Ok(Receiver {
            addr,
            stalled,
            answered,
        })
    }
}

/// One keep-alive connection: each request read whole, then answered (or held while stalled).
fn serve(stream: TcpStream, stalled: &AtomicBool, answered: &AtomicU64) {
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        // The head, up to the blank line.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if stalled.load(Ordering::Relaxed) {
            // Hold the request unanswered until the stall ends, then drop the connection: by then the SDK's
            // request has timed out.
            while stalled.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        answered.fetch_add(1, Ordering::Relaxed);
        // One write for the whole answer, so a reader sees it in one piece.
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/protobuf\r\ncontent-length: {}\r\n\r\n",
            EXPORT_SUCCESS.len()
        )
        .into_bytes();
        answer.extend_from_slice(EXPORT_SUCCESS);
        if writer.write_all(&answer).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One export request; the answer, or an error when none comes within `wait`.
    fn export(addr: std::net::SocketAddr, wait: Duration) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(wait))?;
        stream.write_all(b"POST /x HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc")?;
        // Until the whole answer (it ends with the protobuf body) or the connection closes.
        let (mut answer, mut buf) = (Vec::new(), [0u8; 256]);
        while !answer.ends_with(EXPORT_SUCCESS) {
            match stream.read(&mut buf)? {
                0 => break,
                n => answer.extend_from_slice(&buf[..n]),
            }
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    #[test]
    fn the_receiver_answers_success_unless_stalled() {
        // Generous for an answer (tests run in parallel on 2 cores), short for a stall that must not answer.
        let (answers, stalls) = (Duration::from_secs(10), Duration::from_millis(300));
        let receiver = Receiver::start().unwrap();
        let answer = export(receiver.addr, answers).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("\x08\x01"),
            "{answer:?}"
        );
        receiver.stalled.store(true, Ordering::Relaxed);
        assert!(
            export(receiver.addr, stalls).is_err(),
            "a stalled receiver does not answer"
        );
        receiver.stalled.store(false, Ordering::Relaxed);
        assert!(export(receiver.addr, answers).unwrap().starts_with("HTTP/1.1 200 OK"));
        assert_eq!(receiver.answered.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn lines_are_counted_across_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "{}\n{}\n").unwrap();
        std::fs::write(dir.path().join("b.jsonl"), "{}\n{\"torn").unwrap();
        assert_eq!(count_lines(dir.path()).unwrap(), (2, 3));
    }
}
