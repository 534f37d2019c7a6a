//! The devices under test of `gen-lab`: a server nobody here tuned for
//! lingerd, started in the lab's dut namespace with a configuration written
//! here. [`DutKind::Kernel`] is this binary's own epoll server
//! ([`super::server`], several processes sharing the port), `Nginx` is
//! Debian's nginx serving one small file, `Haproxy` and `HaproxyTcp` are
//! Debian's HAProxy in HTTP or TCP mode in front of that kernel server.
//! Each is sized for the connections asked under the open-files limit
//! (20,000 per process, not raisable) and refused with a clear message when
//! it cannot hold them. [`Dut::start`] returns once the device answers a
//! real request, whose exact length it reports ([`Dut::response_len`]).
//! [`sockets_by_state`] and [`leftover`] read what a namespace's sockets
//! were left in; [`Dut::cpu_time`] the device's CPU time.
//!
//! It owns its processes (and their children), stopped when the [`Dut`] is
//! dropped, and the files it writes in its scratch directory. Beyond that it
//! changes only two backlog sysctls of the namespace it is given; it never
//! touches the host's nginx or HAProxy configuration or services.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use lingerd_lab::proc::{Ending, Proc, Stderr};

use super::server::{self, MAX_RESPONSE, PER_PROCESS, ServerStats};

/// The request every device answers (`GET /r`); the kernel server and
/// HAProxy in TCP mode take any bytes, this too.
pub const REQUEST: &[u8] = b"GET /r HTTP/1.1\r\nHost: lingerd\r\n\r\n";

/// Connections one server process is planned for: SO_REUSEPORT spreads by
/// hash, so a process gets its share ± a few standard deviations, and
/// 12,000 leaves it more than 20 below [`PER_PROCESS`].
pub const PLANNED_PER_PROCESS: usize = 12_000;

/// The most server processes (kernel server or nginx workers) a device
/// runs.
pub const MAX_PROCESSES: usize = 128;

/// The most connections HAProxy holds: it is one process and uses two
/// descriptors per proxied connection (client and server side).
pub const HAPROXY_MAX_CONNECTIONS: usize = 9_000;

/// Where HAProxy's kernel backend listens (on the dut's address; the next
/// port when the device itself listens there).
pub const BACKEND_PORT: u16 = 18_080;

/// The idle timeout of a device asked for none: longer than any run.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long a device may take to start and answer its first request.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Which device `gen-lab` judges against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DutKind {
    /// The Linux kernel: this binary's epoll server.
    Kernel,
    /// nginx serving one small file.
    Nginx,
    /// HAProxy in HTTP mode in front of the kernel server.
    Haproxy,
    /// HAProxy in TCP mode in front of the kernel server.
    HaproxyTcp,
}

impl DutKind {
    /// Every kind, in the order of the text forms.
    pub const ALL: [DutKind; 4] = [
        DutKind::Kernel,
        DutKind::Nginx,
        DutKind::Haproxy,
        DutKind::HaproxyTcp,
    ];

    fn name(self) -> &'static str {
        match self {
            DutKind::Kernel => "kernel",
            DutKind::Nginx => "nginx",
            DutKind::Haproxy => "haproxy",
            DutKind::HaproxyTcp => "haproxy-tcp",
        }
    }

    /// Whether the device speaks HTTP (its response has a head).
    pub fn http(self) -> bool {
        matches!(self, DutKind::Nginx | DutKind::Haproxy)
    }

    /// The most connections this kind can be sized for.
    pub fn max_connections(self) -> usize {
        match self {
            DutKind::Kernel | DutKind::Nginx => MAX_PROCESSES * PLANNED_PER_PROCESS,
            DutKind::Haproxy | DutKind::HaproxyTcp => HAPROXY_MAX_CONNECTIONS,
        }
    }
}

impl fmt::Display for DutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DutKind {
    type Err = String;

    fn from_str(s: &str) -> Result<DutKind, String> {
        DutKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown device '{s}': kernel, nginx, haproxy or haproxy-tcp"))
    }
}

/// How to start a device.
#[derive(Clone, Debug)]
pub struct DutConfig {
    /// The namespace it runs in (the lab's dut namespace).
    pub ns: String,
    /// Where it listens (an address of that namespace).
    pub listen: SocketAddrV4,
    /// Concurrent connections it must hold.
    pub connections: usize,
    /// About how long its response is (exact for the kernel server; nginx
    /// and HAProxy's heads are measured: see [`Dut::response_len`]).
    pub response_bytes: u64,
    /// The device closes connections idle this long: HAProxy's `timeout
    /// client`, nginx's `keepalive_timeout`, the kernel server's
    /// `--idle-close` (`None`: [`LONG_TIMEOUT`], none for the kernel).
    pub client_timeout: Option<Duration>,
    /// Where its configuration, files and logs go (created if missing).
    pub scratch: PathBuf,
    /// This binary (the kernel server is its `gen-lab-server`).
    pub bin: PathBuf,
}

/// Processes a device of `kind` needs for `cfg.connections`, or why it
/// cannot hold them.
pub fn plan_processes(kind: DutKind, connections: usize) -> Result<usize> {
    ensure!(connections >= 1, "a device sized for 0 connections");
    ensure!(
        connections <= kind.max_connections(),
        "{kind} cannot hold {connections} connections under the open-files limit \
         ({} per process): at most {}{}",
        server::nofile_limit().map_or("unlimited".into(), |n| n.to_string()),
        kind.max_connections(),
        match kind {
            DutKind::Haproxy | DutKind::HaproxyTcp =>
                " (HAProxy is one process with two descriptors per proxied connection)",
            _ => "",
        }
    );
    Ok(match kind {
        DutKind::Kernel | DutKind::Nginx => connections.div_ceil(PLANNED_PER_PROCESS),
        DutKind::Haproxy | DutKind::HaproxyTcp => 1,
    })
}

/// A duration in a config file: whole milliseconds (`1500ms`), at least 1.
fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// nginx's configuration.
#[derive(Clone, Debug)]
pub struct NginxPlan {
    /// The prefix (`-p`): pid, logs, temporary files and the served root.
    pub prefix: PathBuf,
    /// Where it listens.
    pub listen: SocketAddrV4,
    /// Worker processes.
    pub workers: usize,
    /// The open-files limit of each worker.
    pub rlimit_nofile: u64,
    /// `keepalive_timeout` (it never closes first unless asked).
    pub keepalive: Duration,
}

/// The text of nginx's configuration for `p`.
pub fn nginx_config(p: &NginxPlan) -> String {
    let prefix = p.prefix.display();
    // Each worker holds its connections, its listening socket (reuseport)
    // and a channel per worker; the rest of the limit is kept free.
    let worker_connections = PER_PROCESS;
    format!(
        "# Written by lingerd-bench gen-lab; nginx -p {prefix}/ -c {prefix}/nginx.conf\n\
         daemon off;\n\
         master_process on;\n\
         user root;\n\
         worker_processes {workers};\n\
         worker_rlimit_nofile {rlimit};\n\
         pid {prefix}/nginx.pid;\n\
         error_log {prefix}/error.log warn;\n\
         events {{\n    worker_connections {worker_connections};\n    multi_accept on;\n    use epoll;\n}}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   server_tokens off;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   sendfile on;\n\
         \x20   tcp_nodelay on;\n\
         \x20   keepalive_timeout {keepalive};\n\
         \x20   keepalive_requests 1000000000;\n\
         \x20   client_body_temp_path {prefix}/tmp/body;\n\
         \x20   proxy_temp_path {prefix}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {prefix}/tmp/fastcgi;\n\
         \x20   uwsgi_temp_path {prefix}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {prefix}/tmp/scgi;\n\
         \x20   server {{\n\
         \x20       listen {listen} reuseport backlog=65535;\n\
         \x20       root {prefix}/www;\n\
         \x20       location / {{ }}\n\
         \x20   }}\n\
         }}\n",
        workers = p.workers,
        rlimit = p.rlimit_nofile,
        keepalive = ms(p.keepalive),
        listen = p.listen,
    )
}

/// HAProxy's configuration.
#[derive(Clone, Debug)]
pub struct HaproxyPlan {
    /// HTTP mode (else TCP).
    pub http: bool,
    /// Where it listens.
    pub listen: SocketAddrV4,
    /// The kernel backend.
    pub backend: SocketAddrV4,
    /// `maxconn` (global, frontend and server).
    pub maxconn: usize,
    /// `timeout client` (and, in HTTP mode, `http-request` and
    /// `http-keep-alive`, which stand in for it between requests).
    pub client_timeout: Duration,
}

/// The text of HAProxy's configuration for `p`.
pub fn haproxy_config(p: &HaproxyPlan) -> String {
    let client = ms(p.client_timeout);
    let mode = if p.http { "http" } else { "tcp" };
    let http_lines = if p.http {
        // One server connection per client connection, closed with it (no
        // idle pool outliving the client), and the idle time between
        // requests is the client timeout.
        format!(
            "    option http-keep-alive\n    http-reuse never\n    \
             timeout http-request {client}\n    timeout http-keep-alive {client}\n"
        )
    } else {
        String::new()
    };
    format!(
        "# Written by lingerd-bench gen-lab; haproxy -db -f THIS\n\
         global\n\
         \x20   maxconn {maxconn}\n\
         defaults\n\
         \x20   mode {mode}\n\
         \x20   maxconn {maxconn}\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client {client}\n\
         \x20   timeout server {server}\n\
         {http_lines}\
         frontend fe\n\
         \x20   bind {listen} backlog 65535\n\
         \x20   default_backend be\n\
         backend be\n\
         \x20   server kernel {backend} maxconn {maxconn}\n",
        maxconn = p.maxconn,
        server = ms(LONG_TIMEOUT),
        listen = p.listen,
        backend = p.backend,
    )
}

/// A running device (see the module text); stopped on drop.
#[derive(Debug)]
pub struct Dut {
    kind: DutKind,
    ns: String,
    listen: SocketAddrV4,
    /// The kernel server processes (the device, or HAProxy's backend).
    servers: Vec<Proc>,
    /// nginx's master or HAProxy.
    front: Option<Proc>,
    response_len: Option<u64>,
    scratch: PathBuf,
}

/// A process in namespace `ns`, its stderr into `log`.
fn spawn_in(
    ns: &str,
    name: &str,
    program: &Path,
    args: &[String],
    log: &Path,
    ending: Ending,
) -> Result<Proc> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program).args(args);
    Proc::spawn(name, cmd, Stderr::File(log), ending)
        .with_context(|| format!("starting {name} in namespace {ns}"))
}

/// The path of `program` (on `PATH`, else in the sbin directories, which
/// a non-root `PATH` lacks), or a message saying how to install it.
pub fn find_program(program: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("{program} is not installed: apt-get install {package} (deploy/bootstrap does)")
        })
}

/// The last lines of a log (for an error message).
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Runs `f` in a thread that first enters namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        lingerd_dataplane::sys::netns::enter(&ns)
            .with_context(|| format!("entering namespace {ns}"))?;
        f()
    })
    .join()
    .map_err(|_| anyhow!("the probe thread panicked"))?
}

/// Sets `key=value` sysctls inside namespace `ns`.
pub fn ns_sysctl(ns: &str, settings: &[(&str, &str)]) -> Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "sysctl", "-q", "-w"]);
    for (k, v) in settings {
        cmd.arg(format!("{k}={v}"));
    }
    let out = cmd
        .output()
        .context("running sysctl through ip netns exec")?;
    ensure!(
        out.status.success(),
        "sysctl {settings:?} in namespace {ns}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The length of the response to [`REQUEST`] on `s`: an HTTP response's
/// head plus its `Content-Length`, or (`raw`) that many bytes; nothing
/// more may follow within a moment.
fn read_response(s: &mut TcpStream, raw: Option<u64>) -> Result<u64> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let want = loop {
        if let Some(n) = raw {
            if got.len() as u64 >= n {
                break n;
            }
        } else if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            ensure!(
                head.starts_with("http/1.1 200"),
                "the device answered {:?}",
                head.lines().next().unwrap_or("")
            );
            let len: u64 = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .context("the device's response has no Content-Length")?
                .trim()
                .parse()
                .context("the device's Content-Length is not a number")?;
            break end as u64 + 4 + len;
        }
        ensure!(got.len() <= 1 << 20, "a response head over 1 MiB");
        let n = s.read(&mut buf).context("reading the device's response")?;
        ensure!(n > 0, "the device closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    };
    while (got.len() as u64) < want {
        let n = s.read(&mut buf).context("reading the device's response")?;
        ensure!(
            n > 0,
            "the device closed after {} of {want} bytes",
            got.len()
        );
        got.extend_from_slice(&buf[..n]);
    }
    ensure!(
        got.len() as u64 == want,
        "the device sent {} bytes, {want} expected",
        got.len()
    );
    // Nothing more may come (the generator waits for exactly this many).
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    match s.read(&mut buf) {
        Ok(0) => bail!("the device closed the connection after its response"),
        Ok(n) => bail!("the device sent {n} bytes more than its response"),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        Err(e) => return Err(e).context("reading after the response"),
    }
    Ok(want)
}

/// Connects to `to` from namespace `ns` until it accepts (by `deadline`),
/// sends [`REQUEST`] and returns the response's length.
fn probe(ns: &str, to: SocketAddrV4, raw: Option<u64>, deadline: Instant) -> Result<u64> {
    in_ns(ns, move || {
        let mut s = loop {
            match TcpStream::connect_timeout(&to.into(), Duration::from_millis(500)) {
                Ok(s) => break s,
                Err(e) => {
                    ensure!(
                        Instant::now() < deadline,
                        "{to} does not accept connections: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(REQUEST).context("sending the request")?;
        read_response(&mut s, raw)
    })
}

impl Dut {
    /// Starts a device of `kind` (see the module text) and returns once it
    /// answered a request.
    pub fn start(kind: DutKind, cfg: &DutConfig) -> Result<Dut> {
        let processes = plan_processes(kind, cfg.connections)?;
        ensure!(
            cfg.response_bytes <= MAX_RESPONSE,
            "a response of at most {MAX_RESPONSE} bytes"
        );
        ensure!(
            !cfg.ns.is_empty() && !cfg.ns.contains('/'),
            "bad namespace name {:?}",
            cfg.ns
        );
        if let Some(t) = cfg.client_timeout {
            ensure!(
                t >= Duration::from_millis(1) && t <= Duration::from_secs(86_400),
                "the client timeout must be 1ms to 24h"
            );
        }
        ensure!(
            Path::new("/run/netns").join(&cfg.ns).exists(),
            "no network namespace {}",
            cfg.ns
        );
        std::fs::create_dir_all(&cfg.scratch)
            .with_context(|| format!("creating {}", cfg.scratch.display()))?;
        ns_sysctl(
            &cfg.ns,
            &[
                ("net.core.somaxconn", "65535"),
                ("net.ipv4.tcp_max_syn_backlog", "65535"),
            ],
        )?;
        let mut dut = Dut {
            kind,
            ns: cfg.ns.clone(),
            listen: cfg.listen,
            servers: Vec::new(),
            front: None,
            response_len: None,
            scratch: cfg.scratch.clone(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        match kind {
            DutKind::Kernel => {
                dut.start_servers(
                    cfg,
                    cfg.listen,
                    processes,
                    false,
                    cfg.client_timeout,
                    deadline,
                )?;
                dut.response_len = Some(probe(
                    &cfg.ns,
                    cfg.listen,
                    Some(cfg.response_bytes),
                    deadline,
                )?);
            }
            DutKind::Nginx => dut.start_nginx(cfg, processes, deadline)?,
            DutKind::Haproxy | DutKind::HaproxyTcp => dut.start_haproxy(cfg, deadline)?,
        }
        Ok(dut)
    }

    /// Starts `n` kernel server processes on `at`, each told `listening`.
    fn start_servers(
        &mut self,
        cfg: &DutConfig,
        at: SocketAddrV4,
        n: usize,
        http: bool,
        idle: Option<Duration>,
        deadline: Instant,
    ) -> Result<()> {
        let mut args = vec![
            "gen-lab-server".to_owned(),
            "--listen".into(),
            at.to_string(),
            "--response-bytes".into(),
            cfg.response_bytes.to_string(),
            "--max-conns".into(),
            PER_PROCESS.to_string(),
        ];
        if let Some(t) = idle {
            args.push("--idle-close".into());
            args.push(format!("{}ms", t.as_millis().max(1)));
        }
        if http {
            args.push("--http".into());
        }
        for i in 0..n {
            let log = self
                .scratch
                .join(format!("kernel-server-{}-{i}.log", at.port()));
            let name = format!("kernel server {i} on {at}");
            let p = spawn_in(&cfg.ns, &name, &cfg.bin, &args, &log, Ending::EofThenKill)?;
            self.servers.push(p);
            let left = deadline.saturating_duration_since(Instant::now());
            let p = self.servers.last_mut().expect("just pushed");
            p.expect("listening", left)
                .map_err(|e| anyhow!("{e}\n{}", tail(&log)))?;
        }
        Ok(())
    }

    fn start_nginx(&mut self, cfg: &DutConfig, workers: usize, deadline: Instant) -> Result<()> {
        let nginx = find_program("nginx", "nginx-light")?;
        let prefix = cfg.scratch.join("nginx");
        for d in ["www", "tmp"] {
            std::fs::create_dir_all(prefix.join(d))?;
        }
        let plan = NginxPlan {
            prefix: prefix.clone(),
            listen: cfg.listen,
            workers,
            rlimit_nofile: server::nofile_limit().unwrap_or(PER_PROCESS as u64 + 1000),
            keepalive: cfg.client_timeout.unwrap_or(LONG_TIMEOUT),
        };
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, nginx_config(&plan))?;
        // A first guess of nginx's head; corrected below once measured.
        let file = prefix.join("www/r");
        let mut body = cfg.response_bytes.saturating_sub(240).max(1);
        std::fs::write(&file, server::response(body, false))?;
        let log = cfg.scratch.join("nginx.log");
        let p = |s: &Path| s.display().to_string();
        let args = [
            "-p".to_owned(),
            format!("{}/", p(&prefix)),
            "-c".into(),
            p(&conf),
            "-e".into(),
            p(&prefix.join("error.log")),
        ];
        self.front = Some(spawn_in(
            &cfg.ns,
            "nginx",
            &nginx,
            &args,
            &log,
            Ending::TermThenKill,
        )?);
        let mut len = probe(&cfg.ns, cfg.listen, None, deadline)
            .map_err(|e| self.front_failed(e, &log, &prefix.join("error.log")))?;
        // Make the whole response the size asked when the head allows it
        // (its length moves with the body's digits: a few tries).
        for _ in 0..3 {
            if len == cfg.response_bytes {
                break;
            }
            let next = (body as i64 + cfg.response_bytes as i64 - len as i64).max(1) as u64;
            if next == body {
                break;
            }
            body = next;
            std::fs::write(&file, server::response(body, false))?;
            len = probe(&cfg.ns, cfg.listen, None, deadline)?;
        }
        self.response_len = Some(len);
        Ok(())
    }

    fn start_haproxy(&mut self, cfg: &DutConfig, deadline: Instant) -> Result<()> {
        let http = self.kind == DutKind::Haproxy;
        let haproxy = find_program("haproxy", "haproxy")?;
        let port = if cfg.listen.port() == BACKEND_PORT {
            BACKEND_PORT + 1
        } else {
            BACKEND_PORT
        };
        let backend = SocketAddrV4::new(*cfg.listen.ip(), port);
        let servers = plan_processes(DutKind::Kernel, cfg.connections)?;
        // The backend never closes first: HAProxy's timeout does.
        self.start_servers(cfg, backend, servers, http, None, deadline)?;
        let plan = HaproxyPlan {
            http,
            listen: cfg.listen,
            backend,
            maxconn: cfg.connections + 100,
            client_timeout: cfg.client_timeout.unwrap_or(LONG_TIMEOUT),
        };
        let conf = cfg.scratch.join("haproxy.cfg");
        std::fs::write(&conf, haproxy_config(&plan))?;
        let log = cfg.scratch.join("haproxy.log");
        let args = ["-db".to_owned(), "-f".into(), conf.display().to_string()];
        self.front = Some(spawn_in(
            &cfg.ns,
            "haproxy",
            &haproxy,
            &args,
            &log,
            Ending::TermThenKill,
        )?);
        let raw = (!http).then(|| server::response(cfg.response_bytes, false).len() as u64);
        let len = probe(&cfg.ns, cfg.listen, raw, deadline)
            .map_err(|e| self.front_failed(e, &log, &log))?;
        self.response_len = Some(len);
        Ok(())
    }

    /// The error of a front process that did not answer, with its logs.
    fn front_failed(&mut self, e: anyhow::Error, log: &Path, error_log: &Path) -> anyhow::Error {
        let status = self.front.as_mut().and_then(Proc::exited);
        let mut text = format!("{e}");
        if let Some(s) = status {
            text.push_str(&format!(" ({} exited: {s})", self.kind));
        }
        for l in [log, error_log] {
            let t = tail(l);
            if !t.is_empty() {
                text.push_str(&format!("\n{}:\n{t}", l.display()));
            }
            if log == error_log {
                break;
            }
        }
        anyhow!(text)
    }

    /// The kind of device.
    pub fn kind(&self) -> DutKind {
        self.kind
    }

    /// Where it listens.
    pub fn listen(&self) -> SocketAddrV4 {
        self.listen
    }

    /// Its namespace.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The exact length of its response to [`REQUEST`], measured at start.
    pub fn response_len(&self) -> Option<u64> {
        self.response_len
    }

    /// The request it answers.
    pub fn request(&self) -> &'static [u8] {
        REQUEST
    }

    /// Every process of the device: the ones started here and their
    /// descendants (nginx's workers).
    pub fn pids(&self) -> Vec<u32> {
        let roots: Vec<u32> = self
            .servers
            .iter()
            .chain(&self.front)
            .map(Proc::pid)
            .collect();
        descendants(&roots)
    }

    /// User + system CPU time of all its processes (and of their reaped
    /// children).
    pub fn cpu_time(&self) -> Result<Duration> {
        cpu_time_of(&self.pids())
    }

    /// The kernel server processes' counts summed (the device's for
    /// `Kernel`, the backend's for HAProxy; zero for nginx).
    pub fn server_stats(&mut self) -> Result<ServerStats> {
        let mut sum = ServerStats::default();
        for s in &mut self.servers {
            s.say("stats")?;
        }
        for s in &mut self.servers {
            let rest = s.expect_rest("stats", Duration::from_secs(5))?;
            sum.add(&ServerStats::parse(&rest)?);
        }
        Ok(sum)
    }

    /// Its sockets by state ([`sockets_by_state`] of its namespace).
    pub fn sockets(&self) -> Result<BTreeMap<String, u64>> {
        sockets_by_state(&self.ns)
    }
}

impl Drop for Dut {
    fn drop(&mut self) {
        // Children first seen now are killed after their parents stopped
        // (an nginx worker whose master died would stay).
        let before: Vec<(u32, u64)> = self
            .pids()
            .into_iter()
            .filter_map(|pid| Some((pid, start_time(pid)?)))
            .collect();
        if let Some(mut f) = self.front.take() {
            f.stop();
        }
        for s in &mut self.servers {
            let _ = s.say("exit");
        }
        self.servers.clear();
        for (pid, started) in before {
            if start_time(pid) == Some(started)
                && let Some(p) = rustix::process::Pid::from_raw(pid as i32)
            {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
    }
}

/// User + system CPU time of the processes `pids` (and of their reaped
/// children), read from `/proc/PID/stat`; a process that left meanwhile
/// counts nothing.
pub fn cpu_time_of(pids: &[u32]) -> Result<Duration> {
    let mut ticks = 0u64;
    for pid in pids {
        // A process may leave between the listing and the read.
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            ticks += parse_stat(&text)
                .with_context(|| format!("/proc/{pid}/stat"))?
                .cpu_ticks;
        }
    }
    // USER_HZ is 100 on Linux (as crate::measure::cpu_time assumes).
    Ok(Duration::from_millis(ticks * 10))
}

/// What this module reads of `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The parent's pid.
    pub ppid: u32,
    /// utime + stime + cutime + cstime, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in clock ticks (tells a reused pid).
    pub start: u64,
}

/// Parses a `/proc/PID/stat` line (the command name may hold spaces and
/// parentheses: the fields start after the last `)`).
pub fn parse_stat(text: &str) -> Result<Stat> {
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .context("no ')' after the command name")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let field = |n: usize| -> Result<u64> {
        f.get(n - 3)
            .with_context(|| format!("field {n} missing"))?
            .parse::<i64>()
            .map(|v| v.max(0) as u64)
            .with_context(|| format!("field {n} is not a number"))
    };
    Ok(Stat {
        ppid: field(4)? as u32,
        cpu_ticks: field(14)? + field(15)? + field(16)? + field(17)?,
        start: field(22)?,
    })
}

fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).ok().map(|s| s.start)
}

/// `roots` and all their live descendants (from `/proc/*/stat`).
pub fn descendants(roots: &[u32]) -> Vec<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(text) = std::fs::read_to_string(e.path().join("stat"))
                && let Ok(s) = parse_stat(&text)
            {
                children.entry(s.ppid).or_default().push(pid);
            }
        }
    }
    let mut out = roots.to_vec();
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c.iter().filter(|p| !roots.contains(p)));
        }
        i += 1;
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Counts `ss -tan` lines (with or without its header) by state.
pub fn parse_ss(text: &str) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(state) = line.split_whitespace().next() else {
            continue;
        };
        if state == "State" {
            continue;
        }
        ensure!(
            state
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'-' || b.is_ascii_digit())
                && line.split_whitespace().count() >= 5,
            "unexpected ss line {line:?}"
        );
        *out.entry(state.to_owned()).or_insert(0) += 1;
    }
    Ok(out)
}

/// The TCP sockets of namespace `ns` by state (`ss -tanH` inside it).
pub fn sockets_by_state(ns: &str) -> Result<BTreeMap<String, u64>> {
    ensure!(
        !ns.is_empty() && !ns.contains('/'),
        "bad namespace name {ns:?}"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-tanH"])
        .output()
        .context("running ss through ip netns exec")?;
    ensure!(
        out.status.success(),
        "ss in namespace {ns}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    parse_ss(&String::from_utf8_lossy(&out.stdout))
}

/// Sockets in any state but LISTEN and TIME-WAIT: what a device still
/// holds of connections that should be gone.
pub fn leftover(states: &BTreeMap<String, u64>) -> u64 {
    states
        .iter()
        .filter(|(s, _)| !matches!(s.as_str(), "LISTEN" | "TIME-WAIT"))
        .map(|(_, n)| n)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), port)
    }

    #[test]
    fn kinds_parse_and_print() {
        for k in DutKind::ALL {
            assert_eq!(k.to_string().parse::<DutKind>(), Ok(k));
        }
        assert_eq!("haproxy-tcp".parse(), Ok(DutKind::HaproxyTcp));
        assert!(
            "apache"
                .parse::<DutKind>()
                .unwrap_err()
                .contains("unknown device")
        );
    }

    #[test]
    fn sizing_under_the_descriptor_limit() {
        assert_eq!(plan_processes(DutKind::Kernel, 2000).unwrap(), 1);
        assert_eq!(plan_processes(DutKind::Kernel, 12_001).unwrap(), 2);
        assert_eq!(plan_processes(DutKind::Nginx, 1_000_000).unwrap(), 84);
        assert_eq!(plan_processes(DutKind::Haproxy, 9_000).unwrap(), 1);
        let e = plan_processes(DutKind::HaproxyTcp, 20_000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("two descriptors"), "{e}");
        assert!(plan_processes(DutKind::Kernel, 0).is_err());
        assert!(plan_processes(DutKind::Kernel, 2_000_000).is_err());
    }

    #[test]
    fn nginx_config_holds_what_a_run_needs() {
        let c = nginx_config(&NginxPlan {
            prefix: "/tmp/x/nginx".into(),
            listen: addr(80),
            workers: 3,
            rlimit_nofile: 20_000,
            keepalive: LONG_TIMEOUT,
        });
        for want in [
            "daemon off;",
            "worker_processes 3;",
            "worker_rlimit_nofile 20000;",
            "worker_connections 15000;",
            "pid /tmp/x/nginx/nginx.pid;",
            "access_log off;",
            "keepalive_timeout 3600000ms;",
            "keepalive_requests 1000000000;",
            "listen 198.18.0.1:80 reuseport backlog=65535;",
            "root /tmp/x/nginx/www;",
            "client_body_temp_path /tmp/x/nginx/tmp/body;",
        ] {
            assert!(c.contains(want), "{want} missing in\n{c}");
        }
        assert_eq!(c.matches('{').count(), c.matches('}').count());
    }

    #[test]
    fn haproxy_config_per_mode() {
        let p = HaproxyPlan {
            http: true,
            listen: addr(80),
            backend: addr(BACKEND_PORT),
            maxconn: 2100,
            client_timeout: Duration::from_millis(1500),
        };
        let c = haproxy_config(&p);
        for want in [
            "mode http",
            "maxconn 2100",
            "timeout client 1500ms",
            "timeout http-keep-alive 1500ms",
            "http-reuse never",
            "bind 198.18.0.1:80 backlog 65535",
            "server kernel 198.18.0.1:18080 maxconn 2100",
        ] {
            assert!(c.contains(want), "{want} missing in\n{c}");
        }
        let t = haproxy_config(&HaproxyPlan { http: false, ..p });
        assert!(t.contains("mode tcp") && !t.contains("http-reuse") && !t.contains("mode http"));
    }

    #[test]
    fn ss_lines_count_by_state() {
        let text = "State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n\
            LISTEN 0 4096 198.18.0.1:80 0.0.0.0:*\n\
            ESTAB  0 0 198.18.0.1:80 198.18.0.2:1024\n\
            ESTAB  0 0 198.18.0.1:80 198.18.0.2:1025\n\
            CLOSE-WAIT 1 0 198.18.0.1:80 198.18.0.2:1026\n\
            TIME-WAIT 0 0 198.18.0.1:80 198.18.0.2:1027\n\
            FIN-WAIT-1 0 1 198.18.0.1:80 198.18.0.2:1028\n\n";
        let m = parse_ss(text).unwrap();
        assert_eq!(m["ESTAB"], 2);
        assert_eq!(m["LISTEN"], 1);
        assert_eq!(m.len(), 5);
        assert_eq!(leftover(&m), 4);
        assert_eq!(leftover(&parse_ss("").unwrap()), 0);
        assert!(parse_ss("garbage here\n").is_err());
        assert!(parse_ss("ESTAB 0\n").is_err());
    }

    #[test]
    fn stat_lines_parse_with_odd_command_names() {
        let line = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 300 0 0 0 \
                    7 5 2 1 20 0 1 0 123456 1000 100 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                ppid: 17,
                cpu_ticks: 15,
                start: 123456
            }
        );
        assert!(parse_stat("4242 (x) S").is_err());
        assert!(parse_stat("no parens").is_err());
        assert!(
            find_program("no-such-program-here", "pkg")
                .unwrap_err()
                .to_string()
                .contains("apt-get install pkg")
        );
        assert!(find_program("sh", "dash").is_ok());
        let me = std::process::id();
        assert!(descendants(&[me]).contains(&me));
    }

    #[test]
    fn responses_are_measured_exactly() {
        use std::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        let serve = |answer: Vec<u8>| {
            let (mut c, _) = l.accept().unwrap();
            let mut req = [0u8; 256];
            let _ = c.read(&mut req).unwrap();
            c.write_all(&answer).unwrap();
            c
        };
        let connect = || {
            let mut s = TcpStream::connect(at).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(REQUEST).unwrap();
            s
        };
        let mut s = connect();
        let _c = serve(server::response(300, true));
        assert_eq!(read_response(&mut s, None).unwrap(), 300);
        let mut s = connect();
        let _c = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc".to_vec());
        assert_eq!(read_response(&mut s, None).unwrap(), 41);
        let mut s = connect();
        let _c = serve(server::response(50, false));
        assert_eq!(read_response(&mut s, Some(50)).unwrap(), 50);
        // One byte too many is an error, so is a 404.
        let mut s = connect();
        let _c = serve(server::response(51, false));
        assert!(read_response(&mut s, Some(50)).is_err());
        let mut s = connect();
        let _c = serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
        assert!(
            read_response(&mut s, None)
                .unwrap_err()
                .to_string()
                .contains("404")
        );
    }
}
