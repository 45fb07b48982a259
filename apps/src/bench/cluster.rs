//! Servers for the replication benchmarks (`bench replicas`, `bench failover`): a plain
//! server, a durable one (`--data-dir`) or a group of replicas (`--cluster`), as real
//! `server` processes on loopback with fresh temporary data dirs, and miners joined to
//! their leader. Every wait is on a log line (timestamped by the reader thread when it
//! arrives, so that polling the channels never skews a figure), never a fixed sleep.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::e2e::Proc;

/// How long a server or miner may take to become ready before the benchmark gives up.
pub(super) const READY: Duration = Duration::from_secs(60);

/// What serves the miners and the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// `server 0`: no disk, no replication (the baseline).
    Plain,
    /// `server 0 --data-dir DIR`: a group of one, fsynced.
    Durable,
    /// `server P --cluster LIST --id N --data-dir DIR`, this many replicas.
    Group(usize),
}

impl Kind {
    /// A short name for the figures.
    pub(super) fn name(self) -> String {
        match self {
            Kind::Plain => "plain".into(),
            Kind::Durable => "durable".into(),
            Kind::Group(n) => format!("{n} replicas"),
        }
    }
}

/// Running servers; killed, and their data dirs removed, on drop.
pub(super) struct Servers {
    /// The processes, in id order (`None` once killed).
    pub(super) procs: Vec<Option<Proc>>,
    /// Their loopback addresses, in id order.
    pub(super) addrs: Vec<String>,
    /// The index of the replica that logged itself leader first.
    pub(super) leader: usize,
    /// When it did.
    pub(super) elected: Instant,
    dir: Option<PathBuf>,
}

impl Servers {
    /// Starts `kind` with the `extra` flags (LSP parameters) and waits until it serves:
    /// its `listening on` line (plain), or a replica's `: leader (term` line.
    pub(super) fn start(bin: &Path, kind: Kind, extra: &[String]) -> Result<Servers, String> {
        let dir = match kind {
            Kind::Plain => None,
            _ => {
                let dir = std::env::temp_dir().join(format!(
                    "bench-replicas-{}-{}",
                    std::process::id(),
                    NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ));
                let _ = std::fs::remove_dir_all(&dir);
                Some(dir)
            }
        };
        let data = {
            let dir = dir.clone();
            move |i: usize| {
                dir.as_ref()
                    .map(|d| d.join(format!("r{i}")).display().to_string())
                    .unwrap_or_default()
            }
        };
        let mut servers = Servers {
            procs: Vec::new(),
            addrs: Vec::new(),
            leader: 0,
            elected: Instant::now(),
            dir,
        };
        match kind {
            Kind::Plain | Kind::Durable => {
                let mut args = vec!["0".to_string()];
                if kind == Kind::Durable {
                    args.extend(["--data-dir".into(), data(1)]);
                }
                args.extend_from_slice(extra);
                let proc = spawn(bin, &args)?;
                let line = proc.wait_line("listening on", READY)?;
                let port = line.rsplit(':').next().map(str::trim).unwrap_or("");
                servers.addrs.push(format!("127.0.0.1:{port}"));
                servers.procs.push(Some(proc));
            }
            Kind::Group(n) => {
                let ports = free_ports(n)?;
                servers.addrs = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
                let list = servers.addrs.join(",");
                for (i, port) in ports.iter().enumerate() {
                    let mut args = vec![port.to_string(), "--cluster".into(), list.clone()];
                    args.extend(["--id".into(), (i + 1).to_string()]);
                    args.extend(["--data-dir".into(), data(i + 1)]);
                    args.extend_from_slice(extra);
                    servers.procs.push(Some(spawn(bin, &args)?));
                }
            }
        }
        if kind != Kind::Plain {
            let all: Vec<usize> = (0..servers.procs.len()).collect();
            let (leader, at) = servers.first_to_log(&all, ": leader (term", READY)?;
            servers.leader = leader;
            servers.elected = at;
        }
        Ok(servers)
    }

    /// Every address, comma-separated in id order (what miners and clients are given).
    pub(super) fn list(&self) -> String {
        self.addrs.join(",")
    }

    /// Of the replicas `among` (indices), the first to log a line containing `pattern`
    /// (reading on from what was read before), and when it was read.
    pub(super) fn first_to_log(
        &self,
        among: &[usize],
        pattern: &str,
        limit: Duration,
    ) -> Result<(usize, Instant), String> {
        poll(limit, || {
            let mut best: Option<(usize, Instant)> = None;
            for &i in among {
                let Some(proc) = self.procs.get(i).and_then(Option::as_ref) else {
                    continue;
                };
                let hit = proc
                    .take_lines()
                    .into_iter()
                    .find(|(_, line)| line.contains(pattern));
                if let Some((at, _)) = hit {
                    if best.is_none_or(|(_, b)| at < b) {
                        best = Some((i, at));
                    }
                }
            }
            best
        })
        .map_err(|_| format!("no server logged {pattern:?} within {limit:?}"))
    }

    /// CPU seconds used so far by every live server together.
    pub(super) fn cpu_seconds(&self) -> Result<f64, String> {
        self.procs
            .iter()
            .flatten()
            .map(Proc::cpu_seconds)
            .sum::<Result<f64, String>>()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.procs.clear();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

static NEXT_DIR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn spawn(bin: &Path, args: &[String]) -> Result<Proc, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn(bin, &args)
}

/// `n` distinct free UDP ports on loopback (held together while chosen, then released).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let sockets = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("no free port: {e}"))?;
    sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("no free port: {e}"))
}

/// Calls `f` every few milliseconds until it gives a value, or `limit` passes. The
/// figures come from the timestamps of the lines read, not from when they are polled.
pub(super) fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, ()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = f() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `count` miners (`miner LIST --threads T -v` plus `extra`) and waits until each
/// has joined `leader` (its `joined <leader> ` line; a miner may try followers first).
pub(super) fn start_miners(
    bin: &Path,
    list: &str,
    leader: &str,
    count: usize,
    extra: &[String],
) -> Result<Vec<Proc>, String> {
    let mut args = vec![list.to_string()];
    args.extend_from_slice(extra);
    let miners = (0..count)
        .map(|_| spawn(bin, &args))
        .collect::<Result<Vec<_>, _>>()?;
    let joined = format!("joined {leader} ");
    for miner in &miners {
        miner.wait_line(&joined, READY)?;
    }
    Ok(miners)
}

/// The minimum, median and maximum of `values` (none if empty).
pub(super) fn min_median_max(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some((*v.first()?, v[v.len() / 2], *v.last()?))
}
