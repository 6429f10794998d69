//! Expands the realistic negative corpus (`tests/realistic/*.tmpl`, format described in
//! `tests/realistic/README.md`) into seeded log records. Test support only: the templates and
//! this expander never ship in the binary.

use std::fmt::Write as _;
use std::path::Path;

/// One template file: a log format of one family.
pub struct Format {
    pub family: String,
    pub name: String,
    blocks: Vec<Block>,
    total_weight: u64,
}

struct Block {
    weight: u64,
    /// Template lines, each already split into literal text and slots.
    lines: Vec<Vec<Piece>>,
    /// Line number (1-based) in the template file of each line.
    line_nos: Vec<usize>,
}

enum Piece {
    Text(String),
    Slot(Slot),
}

enum Slot {
    Uuid,
    Hex(usize, bool),
    Alnum(usize),
    Digits(usize),
    Int(u64, u64),
    Float(f64, f64, usize),
    Pick(Vec<String>),
    B64(usize, bool),
    Ip,
    Ipv6,
    Mac,
    Ts(Ts),
    List(&'static [&'static str]),
    Host(bool),
    Email,
    Path,
    Pod,
    Account,
    Pid,
    Port,
    Status,
    Dur,
}

#[derive(Clone, Copy)]
enum Ts {
    Iso,
    IsoS,
    IsoOff,
    Syslog,
    Clf,
    Space,
    Java,
    Date,
    Time,
    Epoch,
    EpochMs,
    EpochUs,
    EpochF,
    Klog,
    Rfc1123,
    HmsMs,
}

/// splitmix64: small, seeded, good enough to draw test values (no dependency).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn word(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const USERS: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "deploy",
    "www-data",
    "postgres",
    "ubuntu",
    "ec2-user",
    "jenkins",
    "git",
    "root",
    "svc-backup",
    "nagios",
    "mallory",
    "admin",
    "oracle",
    "hadoop",
    "spark",
];
const HOSTS: &[&str] = &[
    "web-03",
    "web-11",
    "db-primary",
    "db-replica-2",
    "ip-10-0-4-17",
    "k8s-node-7",
    "bastion",
    "kafka-1",
    "worker-b2",
    "lb-edge-1",
    "ci-runner-04",
    "hdfs-dn-12",
    "cache-01",
];
const DOMAINS: &[&str] = &[
    "prod.acme.internal",
    "eu-west-1.compute.internal",
    "corp.example.com",
    "svc.cluster.local",
    "staging.acme.io",
];
const WORDS: &[&str] = &[
    "alpha", "harbor", "orbit", "velvet", "quartz", "lantern", "meadow", "cobalt", "summit",
    "ember", "falcon", "glacier", "juniper", "marble", "nectar", "pebble", "ripple", "saffron",
    "timber", "willow", "order", "invoice", "report", "session", "export", "upload", "cache",
];
const NAMES: &[&str] = &[
    "billing-api",
    "checkout",
    "auth-service",
    "search-indexer",
    "payments-worker",
    "gateway",
    "user-profile",
    "notifier",
    "inventory",
    "ledger",
    "media-transcoder",
    "metrics-agent",
];
const NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "payments",
    "monitoring",
    "ingress-nginx",
    "prod",
    "staging",
    "cert-manager",
    "argocd",
];
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
    "sa-east-1",
];
const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD",
];
const STATUSES: &[&str] = &[
    "200", "200", "200", "201", "204", "301", "302", "304", "400", "401", "403", "404", "429",
    "500", "502", "503",
];
const URLPATHS: &[&str] = &[
    "/api/v2/orders/{n}/items",
    "/healthz",
    "/static/js/app.{h}.js",
    "/users/{n}/profile",
    "/login",
    "/api/v1/search?q={w}&page={n}",
    "/metrics",
    "/v1/invoices/{n}.pdf",
    "/oauth/authorize?client_id={w}-web&response_type=code&redirect_uri=%2Fcallback",
    "/favicon.ico",
];
const UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "curl/8.5.0",
    "kube-probe/1.31",
    "Go-http-client/1.1",
    "python-requests/2.32.3",
    "Prometheus/2.54.1",
    "aws-cli/2.17.20 Python/3.11.9 Linux/6.1.109 exe/x86_64.amzn.2",
];
const DIRS: &[&str] = &[
    "/var/lib/app/data",
    "/home/{u}",
    "/opt/{a}/current",
    "/srv/www/{a}/releases/2026110{d}",
    "/tmp",
    "/etc/{a}",
    "/var/log/{a}",
    "/usr/share/{a}",
];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: &[&str] = &["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

fn parse_slot(spec: &str) -> Result<Slot, String> {
    let (name, arg) = match spec.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (spec, None),
    };
    let num = |s: &str| s.parse::<u64>().map_err(|_| format!("bad number {s:?}"));
    let range = |a: Option<&str>| -> Result<(String, String), String> {
        let a = a.ok_or("missing range")?;
        let (lo, hi) = a.split_once('-').ok_or(format!("bad range {a:?}"))?;
        Ok((lo.to_string(), hi.to_string()))
    };
    Ok(match (name, arg) {
        ("uuid", None) => Slot::Uuid,
        ("hex", Some(n)) => Slot::Hex(num(n)? as usize, false),
        ("HEX", Some(n)) => Slot::Hex(num(n)? as usize, true),
        ("alnum", Some(n)) => Slot::Alnum(num(n)? as usize),
        ("digits", Some(n)) => Slot::Digits(num(n)? as usize),
        ("int", a) => {
            let (lo, hi) = range(a)?;
            let (lo, hi) = (num(&lo)?, num(&hi)?);
            if lo > hi {
                return Err(format!("empty range {lo}-{hi}"));
            }
            Slot::Int(lo, hi)
        }
        ("float", Some(a)) => {
            let (r, d) = a.rsplit_once(':').ok_or("float needs A-B:D")?;
            let (lo, hi) = range(Some(r))?;
            let f = |s: &str| s.parse::<f64>().map_err(|_| format!("bad float {s:?}"));
            Slot::Float(f(&lo)?, f(&hi)?, num(d)? as usize)
        }
        ("pick", Some(a)) => Slot::Pick(a.split('|').map(str::to_string).collect()),
        ("b64", Some(n)) => Slot::B64(num(n)? as usize, false),
        ("b64url", Some(n)) => Slot::B64(num(n)? as usize, true),
        ("ip", None) => Slot::Ip,
        ("ipv6", None) => Slot::Ipv6,
        ("mac", None) => Slot::Mac,
        ("ts", Some(k)) => Slot::Ts(match k {
            "iso" => Ts::Iso,
            "iso_s" => Ts::IsoS,
            "iso_off" => Ts::IsoOff,
            "syslog" => Ts::Syslog,
            "clf" => Ts::Clf,
            "space" => Ts::Space,
            "java" => Ts::Java,
            "date" => Ts::Date,
            "time" => Ts::Time,
            "epoch" => Ts::Epoch,
            "epoch_ms" => Ts::EpochMs,
            "epoch_us" => Ts::EpochUs,
            "epoch_f" => Ts::EpochF,
            "klog" => Ts::Klog,
            "rfc1123" => Ts::Rfc1123,
            "hms_ms" => Ts::HmsMs,
            _ => return Err(format!("unknown timestamp {k:?}")),
        }),
        ("user", None) => Slot::List(USERS),
        ("host", None) => Slot::Host(false),
        ("fqdn", None) => Slot::Host(true),
        ("email", None) => Slot::Email,
        ("path", None) => Slot::Path,
        ("word", None) => Slot::List(WORDS),
        ("name", None) => Slot::List(NAMES),
        ("pod", None) => Slot::Pod,
        ("ns", None) => Slot::List(NAMESPACES),
        ("account", None) => Slot::Account,
        ("region", None) => Slot::List(REGIONS),
        ("pid", None) => Slot::Pid,
        ("port", None) => Slot::Port,
        ("status", None) => Slot::Status,
        ("method", None) => Slot::List(METHODS),
        ("urlpath", None) => Slot::List(URLPATHS),
        ("ua", None) => Slot::List(UAS),
        ("dur", None) => Slot::Dur,
        _ => return Err(format!("unknown slot ⟦{spec}⟧")),
    })
}

fn parse_line(line: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find('⟦') {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_string()));
        }
        let after = &rest[i + '⟦'.len_utf8()..];
        let j = after.find('⟧').ok_or("unclosed ⟦")?;
        out.push(Piece::Slot(parse_slot(&after[..j])?));
        rest = &after[j + '⟧'.len_utf8()..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

impl Format {
    /// Parses one template file; errors name the file and line.
    pub fn parse(file_name: &str, text: &str) -> Result<Format, String> {
        let stem = file_name
            .strip_suffix(".tmpl")
            .ok_or(format!("{file_name}: not a .tmpl file"))?;
        let (family, name) = stem
            .split_once("--")
            .ok_or(format!("{file_name}: name is not <family>--<format>.tmpl"))?;
        let mut blocks = Vec::new();
        let mut cur: Option<Block> = None;
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            if line.trim().is_empty() {
                if let Some(b) = cur.take() {
                    if !b.lines.is_empty() {
                        blocks.push(b);
                    }
                }
                continue;
            }
            let b = cur.get_or_insert_with(|| Block {
                weight: 1,
                lines: Vec::new(),
                line_nos: Vec::new(),
            });
            if let Some(c) = line.strip_prefix("#!") {
                if let Some(w) = c.trim().strip_prefix("weight ") {
                    b.weight = w
                        .trim()
                        .parse()
                        .map_err(|_| format!("{file_name}:{n}: bad weight {w:?}"))?;
                }
                continue;
            }
            b.lines
                .push(parse_line(line).map_err(|e| format!("{file_name}:{n}: {e}"))?);
            b.line_nos.push(n);
        }
        if let Some(b) = cur.take() {
            if !b.lines.is_empty() {
                blocks.push(b);
            }
        }
        if blocks.is_empty() {
            return Err(format!("{file_name}: no blocks"));
        }
        let total_weight = blocks.iter().map(|b| b.weight).sum();
        Ok(Format {
            family: family.to_string(),
            name: name.to_string(),
            blocks,
            total_weight,
        })
    }

    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Draws blocks (weighted) until at least `min_lines` records are written; every block
    /// is drawn at least once first, so no template line goes untested. Returns the text
    /// (records end with `\n`) and, per record, the template line it came from.
    pub fn expand(&self, min_lines: usize, rng: &mut Rng) -> (String, Vec<usize>) {
        let mut out = String::new();
        let mut origin = Vec::new();
        let mut clock = Clock::new(rng);
        let mut draw = |b: &Block, out: &mut String, origin: &mut Vec<usize>, rng: &mut Rng| {
            clock.tick(rng);
            for (k, line) in b.lines.iter().enumerate() {
                for p in line {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Slot(s) => fill(s, out, rng, &clock),
                    }
                }
                out.push('\n');
                origin.push(b.line_nos[k]);
            }
        };
        for b in &self.blocks {
            draw(b, &mut out, &mut origin, rng);
        }
        while origin.len() < min_lines {
            let mut w = rng.below(self.total_weight);
            let b = self
                .blocks
                .iter()
                .find(|b| {
                    if w < b.weight {
                        true
                    } else {
                        w -= b.weight;
                        false
                    }
                })
                .expect("weights add up");
            draw(b, &mut out, &mut origin, rng);
        }
        (out, origin)
    }
}

/// Loads every `*.tmpl` in `dir`, sorted by name.
pub fn load(dir: &Path) -> Result<Vec<Format>, String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmpl"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(n)).map_err(|e| format!("{n}: {e}"))?;
            Format::parse(n, &text)
        })
        .collect()
}

/// A wall clock that moves forward a little at every block, so timestamps in one corpus
/// look like one day's log.
struct Clock {
    /// Milliseconds since 2026-11-02T00:00:00Z.
    ms: u64,
    us: u64,
}

impl Clock {
    fn new(rng: &mut Rng) -> Clock {
        Clock {
            ms: rng.below(3_600_000),
            us: 0,
        }
    }
    fn tick(&mut self, rng: &mut Rng) {
        self.ms += rng.below(900);
        self.us = rng.below(1000);
    }
}

/// 2026-11-02T00:00:00Z as seconds since the epoch (a Monday).
const DAY0: u64 = 1_793_577_600;

fn fill(s: &Slot, out: &mut String, rng: &mut Rng, clock: &Clock) {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    match s {
        Slot::Uuid => {
            let h = |rng: &mut Rng, n: usize| -> String {
                (0..n)
                    .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
                    .collect()
            };
            let v = h(rng, 3);
            let var = char::from(b"89ab"[rng.below(4) as usize]);
            let _ = write!(
                out,
                "{}-{}-4{v}-{var}{}-{}",
                h(rng, 8),
                h(rng, 4),
                h(rng, 3),
                h(rng, 12)
            );
        }
        Slot::Hex(n, upper) => {
            let digits: &[u8] = if *upper {
                b"0123456789ABCDEF"
            } else {
                b"0123456789abcdef"
            };
            out.extend((0..*n).map(|_| char::from(digits[rng.below(16) as usize])));
        }
        Slot::Alnum(n) => out.extend((0..*n).map(|_| char::from(*rng.pick(ALNUM)))),
        Slot::Digits(n) => {
            for i in 0..*n {
                let d = if i == 0 {
                    1 + rng.below(9)
                } else {
                    rng.below(10)
                };
                out.push(char::from(b'0' + d as u8));
            }
        }
        Slot::Int(lo, hi) => {
            let _ = write!(out, "{}", lo + rng.below(hi - lo + 1));
        }
        Slot::Float(lo, hi, d) => {
            let x = lo + (hi - lo) * (rng.below(1 << 30) as f64 / (1u64 << 30) as f64);
            let _ = write!(out, "{x:.d$}", d = *d);
        }
        Slot::Pick(xs) => {
            let v: &String = rng.pick(xs);
            out.push_str(v)
        }
        Slot::B64(n, url) => {
            use base64::Engine as _;
            let bytes: Vec<u8> = (0..*n).map(|_| rng.next() as u8).collect();
            if *url {
                out.push_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
            } else {
                out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
            }
        }
        Slot::Ip => {
            let _ = match rng.below(4) {
                0 => write!(out, "192.168.{}.{}", rng.below(256), 1 + rng.below(254)),
                1 => write!(
                    out,
                    "172.{}.{}.{}",
                    16 + rng.below(16),
                    rng.below(256),
                    1 + rng.below(254)
                ),
                2 => write!(
                    out,
                    "{}.{}.{}.{}",
                    1 + rng.below(223),
                    rng.below(256),
                    rng.below(256),
                    1 + rng.below(254)
                ),
                _ => write!(
                    out,
                    "10.{}.{}.{}",
                    rng.below(256),
                    rng.below(256),
                    1 + rng.below(254)
                ),
            };
        }
        Slot::Ipv6 => {
            let _ = write!(
                out,
                "fe80::{:x}:{:x}ff:fe{:02x}:{:x}",
                rng.below(0x10000),
                rng.below(0x100),
                rng.below(0x100),
                rng.below(0x10000)
            );
        }
        Slot::Mac => {
            let b: Vec<String> = (0..5).map(|_| format!("{:02x}", rng.below(256))).collect();
            let _ = write!(out, "02:{}", b.join(":"));
        }
        Slot::Ts(k) => timestamp(*k, out, rng, clock),
        Slot::List(xs) => {
            let v = rng.word(xs);
            out.push_str(&expand_small(v, rng));
        }
        Slot::Host(fq) => {
            out.push_str(rng.word(HOSTS));
            if *fq {
                out.push('.');
                out.push_str(rng.word(DOMAINS));
            }
        }
        Slot::Email => {
            let _ = write!(
                out,
                "{}{}@{}",
                rng.word(USERS).replace('-', "."),
                if rng.below(2) == 0 { "" } else { ".ops" },
                rng.word(&["acme.example", "example.com", "corp.example.org"])
            );
        }
        Slot::Path => {
            let dir = expand_small(rng.word(DIRS), rng);
            let ext = rng.word(&[
                "db", "log", "json", "conf", "tar.gz", "parquet", "pid", "sock",
            ]);
            let _ = write!(
                out,
                "{dir}/{}-{:x}.{ext}",
                rng.word(WORDS),
                rng.below(1 << 20)
            );
        }
        Slot::Pod => {
            const K8S: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let _ = write!(
                out,
                "{}-{:x}-",
                rng.word(NAMES),
                0x5_0000_0000 + rng.below(1 << 32)
            );
            out.extend((0..5).map(|_| char::from(*rng.pick(K8S))));
        }
        Slot::Account => {
            let _ = write!(out, "{:012}", 100_000_000_000 + rng.below(899_999_999_999));
        }
        Slot::Pid => {
            let _ = write!(out, "{}", 1 + rng.below(65_000));
        }
        Slot::Port => {
            let _ = write!(out, "{}", 1024 + rng.below(64_512));
        }
        Slot::Status => out.push_str(rng.word(STATUSES)),
        Slot::Dur => {
            let _ = match rng.below(3) {
                0 => write!(out, "{:.1}ms", rng.below(5000) as f64 / 10.0),
                1 => write!(out, "{:.3}s", rng.below(30_000) as f64 / 1000.0),
                _ => write!(out, "{}µs", rng.below(999)),
            };
        }
    }
}

/// Fills the tiny placeholders used inside the value lists: `{n}` number, `{h}` hash,
/// `{w}` word, `{u}` user, `{a}` app name, `{d}` digit.
fn expand_small(v: &str, rng: &mut Rng) -> String {
    if !v.contains('{') {
        return v.to_string();
    }
    v.replace("{n}", &format!("{}", 1 + rng.below(99_999)))
        .replace("{h}", &format!("{:08x}", rng.below(1 << 32)))
        .replace("{w}", rng.word(WORDS))
        .replace("{u}", rng.word(USERS))
        .replace("{a}", rng.word(NAMES))
        .replace("{d}", &format!("{}", 1 + rng.below(9)))
}

fn timestamp(k: Ts, out: &mut String, rng: &mut Rng, c: &Clock) {
    let secs = DAY0 + c.ms / 1000;
    let ms = c.ms % 1000;
    let day_secs = secs - DAY0;
    let (h, m, s) = (day_secs / 3600 % 24, day_secs / 60 % 60, day_secs % 60);
    // The corpus spans one day: 2026-11-02 (plus the rare roll-over into the 3rd).
    let day = 2 + day_secs / 86_400;
    let dow = DAYS[((1 + day_secs / 86_400) % 7) as usize];
    let _ = match k {
        Ts::Iso => write!(out, "2026-11-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z"),
        Ts::IsoS => write!(out, "2026-11-{day:02}T{h:02}:{m:02}:{s:02}Z"),
        Ts::IsoOff => write!(out, "2026-11-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}+00:00"),
        Ts::Syslog => write!(out, "{} {day:>2} {h:02}:{m:02}:{s:02}", MONTHS[10]),
        Ts::Clf => write!(out, "{day:02}/Nov/2026:{h:02}:{m:02}:{s:02} +0000"),
        Ts::Space => write!(out, "2026-11-{day:02} {h:02}:{m:02}:{s:02}.{ms:03}"),
        Ts::Java => write!(out, "2026-11-{day:02} {h:02}:{m:02}:{s:02},{ms:03}"),
        Ts::Date => write!(out, "2026-11-{day:02}"),
        Ts::Time => write!(out, "{h:02}:{m:02}:{s:02}"),
        Ts::Epoch => write!(out, "{secs}"),
        Ts::EpochMs => write!(out, "{secs}{ms:03}"),
        Ts::EpochUs => write!(out, "{secs}{ms:03}{:03}", c.us),
        Ts::EpochF => write!(out, "{secs}.{ms:03}{:03}", c.us),
        Ts::Klog => write!(
            out,
            "{}11{day:02} {h:02}:{m:02}:{s:02}.{ms:03}{:03}",
            ["I", "I", "I", "W", "E"][rng.below(5) as usize],
            c.us
        ),
        Ts::Rfc1123 => write!(out, "{dow}, {day:02} Nov 2026 {h:02}:{m:02}:{s:02} GMT"),
        Ts::HmsMs => write!(out, "{h:02}:{m:02}:{s:02}.{ms:03}"),
    };
}
